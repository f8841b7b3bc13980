// mqnode's RPI_PICO_W variant: the stock board's configuration (Wi-Fi, Bluetooth, lwIP)
// plus network.PPP, which ports/rp2/mpconfigport.h leaves at 0 unless a board sets it.
#define MICROPY_PY_NETWORK_PPP_LWIP (1)

#include "boards/RPI_PICO_W/mpconfigboard.h"
