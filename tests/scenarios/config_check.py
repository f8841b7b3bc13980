# Runs firmware/config.load on each case file given and prints the result
# or the error, so tests/test_config.py compares both runtimes.
import sys
import config

for path in sys.argv[1:]:
    with open(path) as f:
        cfg_text = f.read()
    try:
        c = config.load(cfg_text, '{"broker_username": "u", "broker_password": "s3cret-pw"}',
                        auto_id="auto-7")
        print("ok", c["node_id"], c["broker.client_id"], c["broker.port"], c["telemetry.interval_s"],
              len(c["sensors"]))
    except config.ConfigError as e:
        print("error", e)
