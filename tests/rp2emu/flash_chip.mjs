// The Pico W's QSPI flash chip (Winbond W25Q16JV, 2 MiB) behind rp2040js's SSI.
//
// rp2040js 1.4.1 serves XIP reads straight from `rp2040.flash` but its SSI answers only
// READ_STATUS and its IO_QSPI block is unimplemented (reads 0xffffffff, so the bootrom's
// flash_was_aborted() is always true): the bootrom's flash_range_erase/_program go nowhere
// and MicroPython cannot format its filesystem. attachFlash() replaces both peripherals:
//
//   * IO_QSPI: registers kept as written; GPIO_QSPI_SS_CTRL.OUTOVER is the chip select the
//     bootrom and the SDK force (2 = drive low = selected, 3 = drive high). With OUTOVER 0
//     the SSI drives CS itself: selected from the first DR0 write until the FIFO drains,
//     which here (frames move at once) is the next SR poll or an SSI disable.
//   * SSI (DW_apb_ssi, RP2040 datasheet §4.10): standard-SPI frames of DFS_32+1 bits written
//     to DR0 are shifted through the chip at once, MSB first, and the answer goes to the RX
//     FIFO (TMOD 0 = TX and RX; TMOD 1 = TX only keeps nothing). TXFLR is always 0, RXFLR
//     counts the answers, SR reports TFE/TFNF, RFNE, never BUSY. Dual/quad frames (boot2
//     setting up continuous XIP reads) are not shifted: XIP reads bypass the SSI here.
//   * the chip (W25Q16JV datasheet rev. I): WREN 0x06 / WRDI 0x04 set/clear WEL at CS high;
//     READ 0x03 and FAST READ 0x0B (one dummy byte) stream from any address, wrapping at the
//     end; PAGE PROGRAM 0x02 ANDs its data into one 256-byte page (the address wraps inside
//     the page, §8.2.13); SECTOR ERASE 0x20 (4 KiB), BLOCK ERASE 0x52 (32 KiB) and 0xD8
//     (64 KiB), CHIP ERASE 0xC7/0x60 set bytes to 0xFF; program/erase/status writes need
//     WEL, run when CS goes high right after the last whole byte (an erase after exactly its
//     three address bytes), and clear WEL. STATUS 1/2/3 reads 0x05/0x35/0x15 repeat for as
//     long as CS stays low; WRITE STATUS 0x01 (SR1, then SR2) and 0x31 (SR2). JEDEC ID 0x9F
//     = EF 40 15, UNIQUE ID 0x4B after four dummy bytes. SR2 starts with QE set, as the
//     W25Q16JV-IQ ships. Program and erase finish at once (BUSY never reads 1) and the
//     block-protect bits are stored but not enforced. Anything else is ignored, as on the
//     chip, and MISO reads 0xFF while the chip does not drive it.

import { BasePeripheral } from 'rp2040js';

export const FLASH_SIZE = 2 * 1024 * 1024;
const PAGE = 256;

const SR1_BUSY = 0x01;
const SR1_WEL = 0x02;
const SR2_QE = 0x02;

export class W25Q16JV {
  /** mem: the bytes XIP reads (rp2040.flash); onWrite(offset, length) after each change. */
  constructor(mem, { uniqueId = [0xe6, 0x60, 0x38, 0xb7, 0x13, 0x4f, 0x23, 0x2b], onWrite } = {}) {
    this.mem = mem;
    this.uniqueId = uniqueId;
    this.onWrite = onWrite || (() => {});
    this.sr = [0, SR2_QE, 0];
    this.selected = false;
    this.head = [];
    this.count = 0;
    this.latch = null;
  }

  select() {
    this.selected = true;
    this.head = []; // opcode and address bytes (the first four bytes of the transaction)
    this.count = 0; // bytes since CS went low
    this.latch = null; // PAGE PROGRAM's page buffer: the byte for each column, 0xFF = keep
  }

  deselect() {
    if (this.selected) {
      this.selected = false;
      this.finish();
    }
  }

  address() {
    const h = this.head;
    return ((h[1] << 16) | (h[2] << 8) | h[3]) % FLASH_SIZE;
  }

  /** One byte on MOSI while CS is low; returns the byte on MISO. */
  transfer(mosi) {
    if (!this.selected) {
      return 0xff;
    }
    const n = this.count++; // index of this byte in the transaction
    if (n < 4) {
      this.head.push(mosi);
    }
    if (n === 0) {
      return 0xff;
    }
    switch (this.head[0]) {
      case 0x05:
        return this.sr[0];
      case 0x35:
        return this.sr[1];
      case 0x15:
        return this.sr[2];
      case 0x03:
        return n >= 4 ? this.mem[(this.address() + n - 4) % FLASH_SIZE] : 0xff;
      case 0x0b:
        return n >= 5 ? this.mem[(this.address() + n - 5) % FLASH_SIZE] : 0xff;
      case 0x9f:
        return [0xef, 0x40, 0x15][(n - 1) % 3];
      case 0x4b:
        return n >= 5 && n < 13 ? this.uniqueId[n - 5] : 0xff;
      case 0x02:
        if (n >= 4) {
          // more than 256 data bytes wrap to the start of the page and replace what
          // was sent there (§8.2.13)
          if (!this.latch) {
            this.latch = new Uint8Array(PAGE).fill(0xff);
          }
          this.latch[(this.address() + n - 4) & (PAGE - 1)] = mosi;
        }
        return 0xff;
      default:
        return 0xff;
    }
  }

  finish() {
    const op = this.head[0];
    const n = this.count;
    if (op === 0x06 && n === 1) {
      this.sr[0] |= SR1_WEL;
      return;
    }
    if (op === 0x04 && n === 1) {
      this.sr[0] &= ~SR1_WEL;
      return;
    }
    if (!(this.sr[0] & SR1_WEL)) {
      return; // program, erase and status writes are ignored without a WRITE ENABLE first
    }
    if (op === 0x02 && this.latch) {
      this.program(this.address() & ~(PAGE - 1), this.latch);
    } else if (n === 4 && (op === 0x20 || op === 0x52 || op === 0xd8)) {
      const size = { 0x20: 4096, 0x52: 32768, 0xd8: 65536 }[op];
      this.erase(this.address() & ~(size - 1), size);
    } else if (n === 1 && (op === 0xc7 || op === 0x60)) {
      this.erase(0, FLASH_SIZE);
    } else if (op === 0x01 && (n === 2 || n === 3)) {
      this.sr[0] = (this.head[1] & ~(SR1_BUSY | SR1_WEL)) | (this.sr[0] & SR1_WEL);
      if (n === 3) {
        this.sr[1] = this.head[2];
      }
    } else if (op === 0x31 && n === 2) {
      this.sr[1] = this.head[1];
    } else {
      return; // not a write, or CS went high at the wrong byte: nothing is executed
    }
    this.sr[0] &= ~SR1_WEL; // WEL clears when a program, erase or status write completes
  }

  program(page, latch) {
    for (let col = 0; col < PAGE; col++) {
      this.mem[page + col] &= latch[col]; // programming only turns 1 bits into 0
    }
    this.onWrite(page, PAGE);
  }

  erase(addr, size) {
    this.mem.fill(0xff, addr, addr + size);
    this.onWrite(addr, size);
  }
}

const SSI_CTRLR0 = 0x00;
const SSI_SSIENR = 0x08;
const SSI_SER = 0x10;
const SSI_TXFLR = 0x20;
const SSI_RXFLR = 0x24;
const SSI_SR = 0x28;
const SSI_DR0 = 0x60;
const SR_TFNF = 0x02;
const SR_TFE = 0x04;
const SR_RFNE = 0x08;
const RX_DEPTH = 16;

// The data path of the SSI; its other registers stay with rp2040js's SSI (`regs`).
class FlashSSI extends BasePeripheral {
  constructor(rp2040, regs, chip, qspi) {
    super(rp2040, 'SSI');
    this.regs = regs;
    this.chip = chip;
    this.qspi = qspi;
    this.rx = [];
    this.ser = 1; // the bootrom selects the flash (SER = 1) before it enters boot2, where we start
    this.ssiDrivesCs = false; // a transaction started by the SSI driving CS (OUTOVER normal)
  }

  endSsiTransaction() {
    if (this.ssiDrivesCs) {
      this.ssiDrivesCs = false;
      this.chip.deselect();
    }
  }

  readUint32(offset) {
    switch (offset) {
      case SSI_TXFLR:
        return 0;
      case SSI_RXFLR:
        return this.rx.length;
      case SSI_SR:
        this.endSsiTransaction(); // polled until TFE: by now the FIFO has drained
        return SR_TFE | SR_TFNF | (this.rx.length ? SR_RFNE : 0);
      case SSI_SER:
        return this.ser;
      case SSI_DR0:
        return this.rx.length ? this.rx.shift() : 0;
    }
    return this.regs.readUint32(offset);
  }

  writeUint32(offset, value) {
    switch (offset) {
      case SSI_SSIENR:
        this.endSsiTransaction();
        this.rx = []; // disabling the SSI clears both FIFOs
        this.regs.writeUint32(offset, value);
        return;
      case SSI_SER:
        this.endSsiTransaction();
        this.ser = value;
        return;
      case SSI_DR0:
        this.shift(value);
        return;
    }
    this.regs.writeUint32(offset, value);
  }

  shift(value) {
    const ctrlr0 = this.regs.readUint32(SSI_CTRLR0);
    const frameFormat = (ctrlr0 >> 21) & 3; // 0 = standard SPI; dual/quad only set up XIP
    const tmod = (ctrlr0 >> 8) & 3;
    if (frameFormat !== 0 || tmod > 1) {
      return;
    }
    if (!this.qspi.csForced() && !this.chip.selected && this.ser & 1) {
      this.chip.select();
      this.ssiDrivesCs = true;
    }
    const bits = (((ctrlr0 >> 16) & 0x1f) + 1) & ~7 || 8;
    let answer = 0;
    for (let shift = bits - 8; shift >= 0; shift -= 8) {
      answer = ((answer << 8) | this.chip.transfer((value >>> shift) & 0xff)) >>> 0;
    }
    if (tmod === 0 && this.rx.length < RX_DEPTH) {
      this.rx.push(answer);
    }
  }
}

const SS_CTRL = 0x0c;
const OUTOVER_LOW = 2;
const OUTOVER_HIGH = 3;
const QSPI_GPIO_REGS = 0x30; // STATUS/CTRL of SCLK, SS, SD0..SD3

class QspiIO extends BasePeripheral {
  constructor(rp2040, chip) {
    super(rp2040, 'IO_QSPI');
    this.chip = chip;
    this.regs = new Uint32Array(QSPI_GPIO_REGS / 4);
  }

  csForced() {
    const over = (this.regs[SS_CTRL / 4] >> 8) & 3;
    return over === OUTOVER_LOW || over === OUTOVER_HIGH;
  }

  readUint32(offset) {
    return offset < QSPI_GPIO_REGS ? this.regs[offset >> 2] : 0;
  }

  writeUint32(offset, value) {
    if (offset >= QSPI_GPIO_REGS) {
      return; // interrupt registers: nothing raises a QSPI GPIO interrupt here
    }
    this.regs[offset >> 2] = value;
    if (offset === SS_CTRL) {
      const over = (value >> 8) & 3;
      if (over === OUTOVER_LOW && !this.chip.selected) {
        this.chip.select();
      } else if (over !== OUTOVER_LOW && this.chip.selected && !this.ssi.ssiDrivesCs) {
        this.chip.deselect();
      }
    }
  }
}

/** Puts `chip` behind the SSI and IO_QSPI of `rp2040` (replacing rp2040js's own). */
export function attachFlash(rp2040, chip) {
  const qspi = new QspiIO(rp2040, chip);
  const ssi = new FlashSSI(rp2040, rp2040.peripherals[0x18000], chip, qspi);
  qspi.ssi = ssi;
  rp2040.peripherals[0x18000] = ssi;
  rp2040.peripherals[0x40018] = qspi;
}
