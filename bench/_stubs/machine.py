# Bench-only extension of the unix port's `machine` (an extensible built-in
# module): mqtt_as imports machine.unique_id, which the unix port lacks.
from umachine import *  # noqa: F401,F403


def unique_id():
    return b"bench-uid"
