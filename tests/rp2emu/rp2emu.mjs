// Boots a Raspberry Pi Pico W image in the rp2040js emulator, one process per boot.
//
//   node rp2emu.mjs --uf2 firmware.uf2 --bootrom rp2040-bootrom-b1.mjs [--flash flash.bin]
//                   [--uart0-fd 3]
//
// stdin/stdout carry the USB CDC serial port (the MicroPython REPL) byte for byte; --uart0-fd
// is a socket carrying UART0 (TX = GPIO0, RX = GPIO1 on a Pico); the harness's own messages go
// to stderr. --flash keeps the flash chip's 2 MiB in a file: loaded at start (then the UF2 is
// written over it, as when a board is flashed; its filesystem stays), every program/erase
// written through at once, so a killed emulator loses nothing it had written.
// Exit status: 42 = the chip reset itself (watchdog: machine.reset() or a WDT timeout, the
// harness starts the next boot), 0 = stdin closed, 1 = error. RP2EMU_DEBUG=1 prints the
// program counter and the emulated time every second on stderr (to see where a boot hangs).
//
// Time: the emulated clock never runs ahead of the wall clock. Busy code runs as fast as the
// emulator can (slower than a real 125 MHz RP2040); an idle core (WFI/WFE) waits in real
// time for its next timer alarm or for input, so timeouts on the board are real seconds.

import fs from 'node:fs';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { Simulator, USBCDC } from 'rp2040js';
import { W25Q16JV, FLASH_SIZE, attachFlash } from './flash_chip.mjs';

const EXIT_RESET = 42;
const UF2_MAGIC = [0x0a324655, 0x9e5d5157];
const UF2_END = 0x0ab16f30;
const FLASH_BASE = 0x10000000;
const CYCLE_NANOS = 1e9 / 125e6;
const SLICE_MS = 20; // run at most this long before looking at I/O again
const IN_LIMIT = 1 << 20; // host input not yet taken by the board (dropped beyond, like a UART)

function parseArgs(argv) {
  const args = { uf2: null, bootrom: null, flash: null, uart0Fd: null };
  for (let i = 0; i < argv.length; i += 2) {
    const key = { '--uf2': 'uf2', '--bootrom': 'bootrom', '--flash': 'flash', '--uart0-fd': 'uart0Fd' }[
      argv[i]
    ];
    if (!key || argv[i + 1] === undefined) {
      throw new Error(`usage: rp2emu.mjs --uf2 F --bootrom F [--flash F] [--uart0-fd N] (got ${argv[i]})`);
    }
    args[key] = argv[i + 1];
  }
  if (!args.uf2 || !args.bootrom) {
    throw new Error('rp2emu.mjs: --uf2 and --bootrom are required');
  }
  return args;
}

function loadUF2(path, flash) {
  const data = fs.readFileSync(path);
  let blocks = 0;
  for (let off = 0; off + 512 <= data.length; off += 512) {
    const magic0 = data.readUInt32LE(off);
    const magic1 = data.readUInt32LE(off + 4);
    if (magic0 !== UF2_MAGIC[0] || magic1 !== UF2_MAGIC[1] || data.readUInt32LE(off + 508) !== UF2_END) {
      throw new Error(`${path}: block ${off / 512} is not a UF2 block`);
    }
    const target = data.readUInt32LE(off + 12);
    const size = data.readUInt32LE(off + 16);
    if (target < FLASH_BASE || target + size > FLASH_BASE + FLASH_SIZE || size > 476) {
      throw new Error(`${path}: block ${off / 512} writes 0x${target.toString(16)}+${size}, outside the 2 MiB flash`);
    }
    flash.set(data.subarray(off + 32, off + 32 + size), target - FLASH_BASE);
    blocks++;
  }
  if (!blocks) {
    throw new Error(`${path}: no UF2 blocks`);
  }
}

/** Bytes from the host waiting for room in the board's receive FIFO (bounded: IN_LIMIT). */
class ByteQueue {
  constructor() {
    this.chunks = [];
    this.pos = 0; // read position in chunks[0]
    this.length = 0;
  }

  push(chunk) {
    if (this.length + chunk.length <= IN_LIMIT) {
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
  }

  shift() {
    const head = this.chunks[0];
    const b = head[this.pos++];
    this.length--;
    if (this.pos === head.length) {
      this.chunks.shift();
      this.pos = 0;
    }
    return b;
  }
}

/** The host's start-of-frame on a full-speed bus: every 1 ms, which rp2040js does not send
 * to a device. TinyUSB on MicroPython waits 16 SOFs after the host sets DTR before it
 * flushes what the board printed; without them the banner waits for the first input. The
 * SOF interrupt (INTR.DEV_SOF, RP2040 datasheet §4.1.4) is cleared by reading SOF_RD. */
function startOfFrames(usb, clock) {
  const SOF_RD = 0x48;
  const INTR_DEV_SOF = 1 << 17;
  const read = usb.readUint32.bind(usb);
  usb.readUint32 = (offset) => {
    if (offset === SOF_RD) {
      usb.intRaw &= ~INTR_DEV_SOF;
      usb.checkInterrupts();
    }
    return read(offset);
  };
  const alarm = clock.createAlarm(() => {
    usb.sofFrameNumber = (usb.sofFrameNumber + 1) & 0x7ff;
    usb.intRaw |= INTR_DEV_SOF;
    usb.checkInterrupts();
    alarm.schedule(1e6);
  });
  alarm.schedule(1e6);
}

/** The PL011's interrupts (RP2040 datasheet §4.2) as MicroPython's UART driver needs them.
 * rp2040js raises TXRIS whenever it looks at its interrupts (with TXIM on, as the driver
 * leaves it, the core never leaves the handler), raises RXRIS for every byte whatever the
 * FIFO trigger level, and has no receive timeout. Here:
 *   TX: raised when the FIFO drains through its trigger level, which is at once after each
 *       byte (bytes leave instantly); cleared by UARTICR, not raised again by itself.
 *   RX: raised while the RX FIFO holds at least the UARTIFLS.RXIFLSEL level (4, 8, 16, 24
 *       or 28 of 32 entries; 16 after reset); cleared by reading below it, or UARTICR.
 *   RT (receive timeout): raised when the RX FIFO holds data and nothing more arrived for
 *       32 bit periods; cleared when the FIFO is read empty, or UARTICR. MicroPython's
 *       UART.IRQ_RXIDLE is this interrupt (network.PPP reads its input on it), so bytes
 *       below the RX level must stay in the FIFO until it fires, as on the chip. */
function pl011Interrupts(uart, mcu, clock) {
  const UARTDR = 0x0;
  const UARTIFLS = 0x34;
  const RXINTR = 1 << 4;
  const TXINTR = 1 << 5;
  const RTINTR = 1 << 6;
  let ifls = 0x12;
  const rxLevel = () => [4, 8, 16, 24, 28][(ifls >> 3) & 7] || 28;
  const update = () => {
    if (uart.rxFIFO.itemCount >= rxLevel()) {
      uart.interruptStatus |= RXINTR;
    } else {
      uart.interruptStatus &= ~RXINTR;
    }
    if (uart.rxFIFO.empty) {
      uart.interruptStatus &= ~RTINTR;
    }
    uart.checkInterrupts();
  };
  uart.checkInterrupts = () => {
    mcu.setInterrupt(uart.irq, !!(uart.interruptStatus & uart.interruptMask));
  };
  const alarm = clock.createAlarm(() => {
    if (!uart.rxFIFO.empty) {
      uart.interruptStatus |= RTINTR;
      uart.checkInterrupts();
    }
  });
  const feed = uart.feedByte.bind(uart);
  uart.feedByte = (value) => {
    feed(value);
    update();
    alarm.schedule((32 * 1e9) / (uart.baudDivider ? uart.baudRate : 115200));
  };
  const read = uart.readUint32.bind(uart);
  uart.readUint32 = (offset) => {
    if (offset === UARTIFLS) {
      return ifls;
    }
    const value = read(offset);
    if (offset === UARTDR) {
      update();
    }
    return value;
  };
  const write = uart.writeUint32.bind(uart);
  uart.writeUint32 = (offset, value) => {
    if (offset === UARTIFLS) {
      ifls = value & 0x3f;
      update();
      return;
    }
    write(offset, value);
    if (offset === UARTDR) {
      uart.interruptStatus |= TXINTR;
      uart.checkInterrupts();
    }
  };
}

function log(msg) {
  process.stderr.write(`rp2emu: ${msg}\n`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { bootromB1 } = await import(pathToFileURL(args.bootrom).href);

  const sim = new Simulator();
  const mcu = sim.rp2040;
  mcu.logger = {
    // rp2040js logs to stdout (console.debug/info), which is the serial port here
    debug() {},
    info() {},
    warn() {},
    error(component, msg) {
      log(`[${component}] ${msg}`);
    },
  };
  mcu.loadBootrom(bootromB1); // also resets the core and fills the flash with 0xFF

  let flashFd = null;
  if (args.flash) {
    if (fs.existsSync(args.flash)) {
      const saved = fs.readFileSync(args.flash);
      if (saved.length !== FLASH_SIZE) {
        throw new Error(`${args.flash}: ${saved.length} bytes, a flash image is ${FLASH_SIZE}`);
      }
      mcu.flash.set(saved);
    }
  }
  loadUF2(args.uf2, mcu.flash);
  if (args.flash) {
    flashFd = fs.openSync(args.flash, fs.existsSync(args.flash) ? 'r+' : 'w+');
    fs.writeSync(flashFd, mcu.flash, 0, FLASH_SIZE, 0);
  }
  const chip = new W25Q16JV(mcu.flash, {
    onWrite(offset, length) {
      if (flashFd !== null) {
        fs.writeSync(flashFd, mcu.flash, offset, length, offset);
      }
    },
  });
  attachFlash(mcu, chip);

  // USB CDC <-> stdin/stdout
  const cdc = new USBCDC(mcu.usbCtrl);
  startOfFrames(mcu.usbCtrl, sim.clock);
  // A host with nothing to send sends nothing: rp2040js's USBCDC completes each read of the
  // OUT endpoint at once, empty when it has no data, and the board's USB stack re-arms it
  // every 10 us, so an idle board never sleeps. Here a read waits until there is data.
  const completeRead = mcu.usbCtrl.onEndpointRead;
  let pendingRead = null; // the size of the OUT read the board has armed, while no data
  mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
    if (endpoint === cdc.outEndpoint && cdc.txFIFO.empty) {
      pendingRead = size;
    } else {
      completeRead(endpoint, size);
    }
  };
  const hostIn = new ByteQueue();
  cdc.onSerialData = (buf) => process.stdout.write(Buffer.from(buf));
  process.stdin.on('data', (chunk) => {
    hostIn.push(chunk);
    wake();
  });
  process.stdin.on('end', () => finish(0));

  // UART0 <-> a socket, for network.PPP on the board
  const uartIn = new ByteQueue();
  if (args.uart0Fd !== null) {
    const sock = new net.Socket({ fd: Number(args.uart0Fd), readable: true, writable: true });
    pl011Interrupts(mcu.uart[0], mcu, sim.clock);
    mcu.uart[0].onByte = (b) => sock.write(Buffer.of(b));
    sock.on('data', (chunk) => {
      uartIn.push(chunk);
      wake();
    });
    sock.on('error', (e) => log(`uart0: ${e.message}`));
  }

  mcu.peripherals[0x40058].onWatchdogTrigger = () => finish(EXIT_RESET); // WATCHDOG_BASE
  mcu.core.PC = FLASH_BASE; // boot2 at the start of flash, as the bootrom would jump to it

  function feed() {
    const usbFifo = cdc.txFIFO;
    while (hostIn.length && usbFifo.itemCount < usbFifo.size) {
      cdc.sendSerialByte(hostIn.shift());
    }
    if (pendingRead !== null && !usbFifo.empty) {
      const size = pendingRead;
      pendingRead = null;
      completeRead(cdc.outEndpoint, size);
    }
    const uart = mcu.uart[0];
    while (uartIn.length && !uart.rxFIFO.full) {
      uart.feedByte(uartIn.shift());
    }
  }
  const clock = sim.clock;
  const t0 = performance.now();
  const nanos0 = clock.nanos;
  let timer = null;
  let done = false;

  function wake() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
      setImmediate(run);
    }
  }

  function run() {
    timer = null;
    if (done) return;
    const core = mcu.core;
    const sliceEnd = performance.now() + SLICE_MS;
    feed();
    for (;;) {
      for (let i = 0; i < 20000; i++) {
        if (core.waiting) {
          const wallNanos = (performance.now() - t0) * 1e6 + nanos0;
          const next = clock.nanosToNextAlarm;
          if (next === 0 || clock.nanos + next > wallNanos) {
            // idle: sleep (in real time) until the next alarm, or until input wakes us
            const waitMs = next === 0 ? 1000 : Math.max(0, (clock.nanos + next - wallNanos) / 1e6);
            if (waitMs > 0.05) {
              timer = setTimeout(run, Math.min(waitMs, 1000));
              return;
            }
          }
          clock.tick(next);
        } else {
          clock.tick(core.executeInstruction() * CYCLE_NANOS);
        }
        if (done) return;
      }
      feed();
      if (performance.now() >= sliceEnd) break;
    }
    setImmediate(run);
  }

  function finish(code) {
    if (done) return;
    done = true;
    if (flashFd !== null) fs.closeSync(flashFd);
    process.stdout.write('', () => process.exit(code));
  }
  process.on('SIGTERM', () => finish(0));

  if (process.env.RP2EMU_DEBUG) setInterval(() => log(`pc=${mcu.core.PC.toString(16)} t=${(clock.nanos / 1e6).toFixed(1)}ms waiting=${mcu.core.waiting}`), 1000);
  run();
}

main().catch((e) => {
  log(e.stack || String(e));
  process.exit(1);
});
