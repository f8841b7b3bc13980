# mqnode's RPI_PICO_W variant: the stock board plus network.PPP (lwIP PPPoS), so a board
# without its radio (the RP2040 emulator in tests/rp2emu) reaches the network over a UART.
# Build: make -C ports/rp2 BOARD_DIR=<repo>/boards/rp2_pico_w/RPI_PICO_W_PPP FROZEN_MANIFEST=...
include(${MICROPY_PORT_DIR}/boards/RPI_PICO_W/mpconfigboard.cmake)

# The stock board's pin names (this folder has no pins.csv of its own).
set(MICROPY_BOARD_PINS ${MICROPY_PORT_DIR}/boards/RPI_PICO_W/pins.csv)
