# The stock RPI_PICO_W's frozen modules. ../manifest.py (what mqnode builds with) includes
# this as $(BOARD_DIR)/manifest.py and adds lib/, firmware/ and board.py.
include("$(PORT_DIR)/boards/RPI_PICO_W/manifest.py")
