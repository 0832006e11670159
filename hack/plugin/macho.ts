/**
 * Just enough Mach-O to ship the plugin for macOS from a Linux build machine: read a
 * 64-bit executable's segments and load commands, and give it an ad-hoc code signature.
 *
 * Why sign: Node's `--build-sea` injects the application into a copy of the official
 * darwin `node` binary and, doing so, drops that binary's signature (it no longer
 * matches). macOS on Apple silicon kills any arm64 executable without a valid
 * signature, and no `codesign` runs here. An ad-hoc signature (no certificate, only a
 * CodeDirectory of page hashes) is what `codesign --sign -` and Go's linker write; it is
 * enough for the kernel. It is not a Developer ID signature: Gatekeeper still warns
 * about a file downloaded by a browser (krew and curl do not set the quarantine flag).
 *
 * The layout follows Go's linker (src/cmd/internal/codesign, used by `go build` for
 * darwin): one SHA-256 CodeDirectory, 4 KiB pages, the signature appended at the end of
 * __LINKEDIT, 16-byte aligned. The test re-signs a Go-built darwin binary and compares
 * the result with what Go's linker wrote, byte for byte.
 */
import { createHash } from 'node:crypto';

const MH_MAGIC_64 = 0xfeedfacf;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const MACH_HEADER_64_SIZE = 32;

const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSSLOT_CODEDIRECTORY = 0;
const CS_HASHTYPE_SHA256 = 2;
const CS_ADHOC = 0x2;
const CS_LINKER_SIGNED = 0x20000;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const SUPER_BLOB_SIZE = 12;
const BLOB_INDEX_SIZE = 8;
/** CodeDirectory version 0x20400 (with the exec segment fields). */
const CODE_DIRECTORY_SIZE = 88;
const PAGE_SIZE_BITS = 12;
const PAGE_SIZE = 1 << PAGE_SIZE_BITS;
const SHA256_SIZE = 32;

export const CPU_TYPE_X86_64 = 0x01000007;
export const CPU_TYPE_ARM64 = 0x0100000c;

export interface Section {
  name: string;
  offset: number;
  size: number;
}

export interface Segment {
  name: string;
  /** Offset of the segment_command_64 in the file. */
  commandOffset: number;
  vmaddr: bigint;
  vmsize: bigint;
  fileoff: number;
  filesize: number;
  sections: Section[];
}

export interface MachO {
  cpuType: number;
  fileType: number;
  ncmds: number;
  sizeofcmds: number;
  segments: Segment[];
  /** Offset and size of the signature, when the file has an LC_CODE_SIGNATURE. */
  codeSignature?: { commandOffset: number; dataoff: number; datasize: number };
  /** First byte used by section data: load commands may grow up to here. */
  firstSectionOffset: number;
}

const cString = (b: Buffer, start: number, length: number): string => {
  const raw = b.subarray(start, start + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? raw.length : nul).toString('latin1');
};

/** Parses a thin 64-bit little-endian Mach-O file (what Node ships for macOS). */
export function parseMachO(file: Buffer): MachO {
  if (file.length < MACH_HEADER_64_SIZE || file.readUInt32LE(0) !== MH_MAGIC_64) {
    throw new Error('not a 64-bit little-endian Mach-O file (universal binaries are not supported)');
  }
  const m: MachO = {
    cpuType: file.readUInt32LE(4),
    fileType: file.readUInt32LE(12),
    ncmds: file.readUInt32LE(16),
    sizeofcmds: file.readUInt32LE(20),
    segments: [],
    firstSectionOffset: file.length,
  };
  let off = MACH_HEADER_64_SIZE;
  for (let i = 0; i < m.ncmds; i++) {
    const cmd = file.readUInt32LE(off);
    const cmdsize = file.readUInt32LE(off + 4);
    if (cmdsize < 8 || off + cmdsize > MACH_HEADER_64_SIZE + m.sizeofcmds) throw new Error(`load command ${i} is malformed`);
    if (cmd === LC_SEGMENT_64) {
      const nsects = file.readUInt32LE(off + 64);
      const sections: Section[] = [];
      for (let j = 0; j < nsects; j++) {
        const s = off + 72 + 80 * j;
        const section = { name: cString(file, s, 16), size: Number(file.readBigUInt64LE(s + 40)), offset: file.readUInt32LE(s + 48) };
        sections.push(section);
        // Zero-fill sections (__bss) have offset 0: they take no file space.
        if (section.offset > 0) m.firstSectionOffset = Math.min(m.firstSectionOffset, section.offset);
      }
      m.segments.push({
        name: cString(file, off + 8, 16),
        commandOffset: off,
        vmaddr: file.readBigUInt64LE(off + 24),
        vmsize: file.readBigUInt64LE(off + 32),
        fileoff: Number(file.readBigUInt64LE(off + 40)),
        filesize: Number(file.readBigUInt64LE(off + 48)),
        sections,
      });
    } else if (cmd === LC_CODE_SIGNATURE) {
      m.codeSignature = { commandOffset: off, dataoff: file.readUInt32LE(off + 8), datasize: file.readUInt32LE(off + 12) };
    }
    off += cmdsize;
  }
  return m;
}

/** The size of an ad-hoc signature over `codeSize` bytes with identifier `id`. */
function signatureSize(codeSize: number, id: string): number {
  const pages = Math.ceil(codeSize / PAGE_SIZE);
  return SUPER_BLOB_SIZE + BLOB_INDEX_SIZE + CODE_DIRECTORY_SIZE + Buffer.byteLength(id) + 1 + pages * SHA256_SIZE;
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * Returns `file` with an ad-hoc signature: any existing signature is replaced, or an
 * LC_CODE_SIGNATURE load command is added (the header padding must have room for it).
 * `id` is the CodeDirectory identifier (no meaning for ad-hoc signing; codesign uses the
 * file name).
 */
export function adHocSign(input: Buffer, id: string): Buffer {
  const m = parseMachO(input);
  const text = m.segments.find((s) => s.name === '__TEXT');
  const linkedit = m.segments.find((s) => s.name === '__LINKEDIT');
  if (!text || !linkedit) throw new Error('the Mach-O file has no __TEXT or __LINKEDIT segment');

  // Where the signature goes: replacing one keeps its offset; otherwise after __LINKEDIT.
  const codeSize = m.codeSignature ? m.codeSignature.dataoff : roundUp(linkedit.fileoff + linkedit.filesize, 16);
  const size = signatureSize(codeSize, id);
  const out = Buffer.alloc(codeSize + size);
  input.copy(out, 0, 0, Math.min(input.length, codeSize));

  let cmdOffset: number;
  if (m.codeSignature) {
    cmdOffset = m.codeSignature.commandOffset;
  } else {
    cmdOffset = MACH_HEADER_64_SIZE + m.sizeofcmds;
    if (cmdOffset + 16 > m.firstSectionOffset) throw new Error('no room in the Mach-O header for a code signature load command');
    out.writeUInt32LE(m.ncmds + 1, 16);
    out.writeUInt32LE(m.sizeofcmds + 16, 20);
  }
  out.writeUInt32LE(LC_CODE_SIGNATURE, cmdOffset);
  out.writeUInt32LE(16, cmdOffset + 4);
  out.writeUInt32LE(codeSize, cmdOffset + 8);
  out.writeUInt32LE(size, cmdOffset + 12);

  // __LINKEDIT now ends with the signature. Its memory size keeps the file's own
  // convention: Apple's ld rounds it to the page size, Go's linker leaves it equal to
  // the file size; either loads.
  const filesize = codeSize + size - linkedit.fileoff;
  const vmPage = m.cpuType === CPU_TYPE_ARM64 ? 0x4000 : 0x1000;
  const vmsize = linkedit.vmsize === BigInt(linkedit.filesize) ? filesize : roundUp(filesize, vmPage);
  out.writeBigUInt64LE(BigInt(filesize), linkedit.commandOffset + 48);
  out.writeBigUInt64LE(BigInt(vmsize), linkedit.commandOffset + 32);

  // The signature: a SuperBlob holding one CodeDirectory, big-endian as Apple's are.
  let p = codeSize;
  const u32 = (v: number) => {
    out.writeUInt32BE(v >>> 0, p);
    p += 4;
  };
  const u64 = (v: number) => {
    out.writeBigUInt64BE(BigInt(v), p);
    p += 8;
  };
  const pages = Math.ceil(codeSize / PAGE_SIZE);
  const identOffset = CODE_DIRECTORY_SIZE;
  const hashOffset = identOffset + Buffer.byteLength(id) + 1;
  u32(CSMAGIC_EMBEDDED_SIGNATURE);
  u32(size);
  u32(1);
  u32(CSSLOT_CODEDIRECTORY);
  u32(SUPER_BLOB_SIZE + BLOB_INDEX_SIZE);
  u32(CSMAGIC_CODEDIRECTORY);
  u32(size - SUPER_BLOB_SIZE - BLOB_INDEX_SIZE);
  u32(0x20400); // version
  u32(CS_ADHOC | CS_LINKER_SIGNED);
  u32(hashOffset);
  u32(identOffset);
  u32(0); // nSpecialSlots
  u32(pages); // nCodeSlots
  u32(codeSize); // codeLimit
  out[p++] = SHA256_SIZE;
  out[p++] = CS_HASHTYPE_SHA256;
  out[p++] = 0;
  out[p++] = PAGE_SIZE_BITS;
  u32(0); // spare2
  u32(0); // scatterOffset
  u32(0); // teamOffset
  u32(0); // spare3
  u64(0); // codeLimit64
  u64(text.fileoff); // execSegBase
  u64(text.filesize); // execSegLimit
  u64(m.fileType === 2 ? CS_EXECSEG_MAIN_BINARY : 0); // MH_EXECUTE
  p += out.write(id, p, 'utf8') + 1;
  // Page hashes are over the file as it will be, header changes included.
  for (let i = 0; i < pages; i++) {
    const page = out.subarray(i * PAGE_SIZE, Math.min(codeSize, (i + 1) * PAGE_SIZE));
    createHash('sha256').update(page).digest().copy(out, p);
    p += SHA256_SIZE;
  }
  return out;
}

/**
 * Checks a code signature (ad-hoc or not) the way the kernel does for code pages: every page hash in
 * the CodeDirectory matches the file. Returns what is wrong, or undefined when it holds.
 */
export function verifyCodeSignature(file: Buffer): string | undefined {
  const m = parseMachO(file);
  if (!m.codeSignature) return 'no LC_CODE_SIGNATURE';
  const { dataoff, datasize } = m.codeSignature;
  if (dataoff + datasize > file.length) return 'the signature runs past the end of the file';
  if (file.readUInt32BE(dataoff) !== CSMAGIC_EMBEDDED_SIGNATURE) return 'no embedded signature SuperBlob';
  const count = file.readUInt32BE(dataoff + 8);
  for (let i = 0; i < count; i++) {
    const type = file.readUInt32BE(dataoff + 12 + 8 * i);
    if (type !== CSSLOT_CODEDIRECTORY) continue;
    const cd = dataoff + file.readUInt32BE(dataoff + 16 + 8 * i);
    if (file.readUInt32BE(cd) !== CSMAGIC_CODEDIRECTORY) return 'the CodeDirectory slot holds no CodeDirectory';
    const hashOffset = file.readUInt32BE(cd + 16);
    const nCodeSlots = file.readUInt32BE(cd + 28);
    const codeLimit = file.readUInt32BE(cd + 32);
    const hashSize = file[cd + 36]!;
    const pageSize = 1 << file[cd + 39]!;
    if (file[cd + 37] !== CS_HASHTYPE_SHA256 || hashSize !== SHA256_SIZE) return 'the CodeDirectory does not use SHA-256';
    if (codeLimit !== dataoff) return `codeLimit ${codeLimit} is not the signature offset ${dataoff}`;
    if (nCodeSlots !== Math.ceil(codeLimit / pageSize)) return 'the CodeDirectory does not cover every page';
    for (let page = 0; page < nCodeSlots; page++) {
      const want = file.subarray(cd + hashOffset + page * hashSize, cd + hashOffset + (page + 1) * hashSize);
      const got = createHash('sha256')
        .update(file.subarray(page * pageSize, Math.min(codeLimit, (page + 1) * pageSize)))
        .digest();
      if (!got.equals(want)) return `page ${page} does not match its hash`;
    }
    return undefined;
  }
  return 'no CodeDirectory';
}
