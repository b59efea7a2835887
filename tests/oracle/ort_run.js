#!/usr/bin/env node
// Kiln's reference oracle: runs an ONNX model with onnxruntime-node (CPU
// execution provider) and writes every output as OUT_DIR/<output name>.npy.
//
//   node tests/oracle/ort_run.js MODEL.onnx OUT_DIR NAME=in.npy [NAME=in.npy...] [--threads N]
//                                [--repeat N --timing]
//
// With --timing, prints to stderr the line `kiln bench` reads:
//   timing load_ms=<session creation> first_ms=<first run> median_ms=<median of the rest> runs=N threads=T
//
// Output names are sanitised for the file system: any character outside
// [A-Za-z0-9_.-] becomes '_'. .npy files (format v1.0, also reads v2.0/3.0)
// of dtype float32, float64, int64, int32, int8, uint8 and bool are
// supported, C order only. Exits nonzero with a message on any failure.
'use strict';

const fs = require('fs');
const path = require('path');

// Messages name the script that was run (ort_run or ort_stream, which shares this code).
const TOOL = path.basename(process.argv[1] || 'ort_run.js', '.js');

function fail(msg) {
  process.stderr.write(`${TOOL}: error: ${msg}\n`);
  process.exit(1);
}

// ---- .npy -----------------------------------------------------------------

// numpy descr (without byte order) <-> ORT tensor type and typed array.
const DTYPES = [
  { descr: 'f4', ort: 'float32', Arr: Float32Array },
  { descr: 'f8', ort: 'float64', Arr: Float64Array },
  { descr: 'i8', ort: 'int64', Arr: BigInt64Array },
  { descr: 'u8', ort: 'uint64', Arr: BigUint64Array },
  { descr: 'i4', ort: 'int32', Arr: Int32Array },
  { descr: 'u4', ort: 'uint32', Arr: Uint32Array },
  { descr: 'i2', ort: 'int16', Arr: Int16Array },
  { descr: 'u2', ort: 'uint16', Arr: Uint16Array },
  { descr: 'i1', ort: 'int8', Arr: Int8Array },
  { descr: 'u1', ort: 'uint8', Arr: Uint8Array },
  { descr: 'b1', ort: 'bool', Arr: Uint8Array },
];

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function parseHeaderDict(text, file) {
  // e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 224, 224), }
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) fail(`${file}: cannot parse .npy header: ${text.trim()}`);
  if (fortran[1] === 'True') fail(`${file}: Fortran-order arrays are not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isInteger(n) || n < 0) fail(`${file}: bad shape entry '${s}'`);
      return n;
    });
  return { descr: descr[1], dims };
}

function readNpy(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    fail(`cannot read ${file}: ${e.message}`);
  }
  const magic = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
  if (buf.length < 10 || !buf.subarray(0, 6).equals(magic)) fail(`${file}: not a .npy file`);
  const major = buf[6];
  let headerLen;
  let offset;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    fail(`${file}: unsupported .npy version ${major}.${buf[7]}`);
  }
  const header = buf.subarray(offset, offset + headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const dataStart = offset + headerLen;
  const { descr, dims } = parseHeaderDict(header, file);

  const order = descr[0];
  const code = descr.slice(1);
  const dt = DTYPES.find((d) => d.descr === code);
  if (!dt || !'<>|='.includes(order)) fail(`${file}: unsupported dtype '${descr}'`);
  const itemSize = dt.Arr.BYTES_PER_ELEMENT;
  const bigEndian = order === '>' || (order === '=' && !littleEndianHost);
  if (bigEndian && itemSize > 1) fail(`${file}: big-endian dtype '${descr}' is not supported`);

  const count = dims.reduce((a, b) => a * b, 1);
  const nbytes = count * itemSize;
  if (buf.length - dataStart < nbytes) {
    fail(`${file}: truncated: shape [${dims}] of ${descr} needs ${nbytes} bytes, ` +
         `file has ${buf.length - dataStart}`);
  }
  // Copy into a fresh, aligned ArrayBuffer.
  const ab = new ArrayBuffer(nbytes);
  new Uint8Array(ab).set(buf.subarray(dataStart, dataStart + nbytes));
  let data = new dt.Arr(ab);
  if (dt.ort === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  return { type: dt.ort, dims, data };
}

function writeNpy(file, type, dims, data) {
  const dt = DTYPES.find((d) => d.ort === type);
  if (!dt) fail(`output '${file}': tensor type '${type}' cannot be written as .npy`);
  const descr = (dt.Arr.BYTES_PER_ELEMENT === 1 ? '|' : '<') + dt.descr;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // v1.0: magic(6) + version(2) + len(2) + header, padded with spaces to a
  // multiple of 64 and terminated by '\n'.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header + ' '.repeat(total - 10 - header.length - 1) + '\n';
  if (header.length > 65535) fail(`${file}: .npy header too long`);
  const pre = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(pre, 0);
  pre.writeUInt16LE(header.length, 8);

  let bytes;
  if (type === 'bool') {
    bytes = Buffer.from(Uint8Array.from(data, (v) => (v ? 1 : 0)));
  } else {
    const arr = data instanceof dt.Arr ? data : dt.Arr.from(data);
    bytes = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
  }
  if (!littleEndianHost && dt.Arr.BYTES_PER_ELEMENT > 1) fail('big-endian hosts are not supported');
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), bytes]));
}

// ---- main -----------------------------------------------------------------

function sanitise(name) {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_');
}

// Peak resident memory of this process image (VmHWM), or -1 where /proc is missing.
function peakRssKb() {
  try {
    const m = /VmHWM:\s*(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : -1;
  } catch (e) {
    return -1;
  }
}

function usage() {
  return 'usage: node tests/oracle/ort_run.js MODEL.onnx OUT_DIR NAME=in.npy [NAME=in.npy...] [--threads N] [--repeat N] [--timing]';
}

function parseArgs(argv) {
  const pos = [];
  let threads = 1, repeat = 1, timing = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(usage() + '\n');
      process.exit(0);
    } else if (a === '--threads' || a.startsWith('--threads=')) {
      const v = a === '--threads' ? argv[++i] : a.slice('--threads='.length);
      threads = Number(v);
      if (!Number.isInteger(threads) || threads < 1) fail(`--threads needs a positive integer, got '${v}'`);
    } else if (a === '--repeat') {
      const v = argv[++i];
      repeat = Number(v);
      if (!Number.isInteger(repeat) || repeat < 1) fail(`--repeat needs a positive integer, got '${v}'`);
    } else if (a === '--timing') {
      timing = true;
    } else if (a.startsWith('--')) {
      fail(`unknown option '${a}'\n${usage()}`);
    } else {
      pos.push(a);
    }
  }
  if (pos.length < 2) fail(`missing arguments\n${usage()}`);
  const [model, outDir, ...specs] = pos;
  const inputs = specs.map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0 || eq === s.length - 1) fail(`bad input '${s}', expected NAME=file.npy`);
    return { name: s.slice(0, eq), file: s.slice(eq + 1) };
  });
  return { model, outDir, inputs, threads, repeat, timing };
}

/** onnxruntime-node, or a failure that says how to install it. */
function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node (run: cd ${path.relative(process.cwd(), __dirname) || '.'} && ` +
         `ONNXRUNTIME_NODE_INSTALL=skip npm install): ${e.message}`);
  }
}

/** A CPU session with all graph optimisations, on `threads` intra-op threads. */
async function createSession(ort, model, threads) {
  try {
    return await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    fail(`cannot load model ${model}: ${e.message}`);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const ort = loadOrt();
  if (!fs.existsSync(args.model)) fail(`model not found: ${args.model}`);

  const loadStart = process.hrtime.bigint();
  const session = await createSession(ort, args.model, args.threads);

  const feeds = {};
  for (const { name, file } of args.inputs) {
    if (!session.inputNames.includes(name)) {
      fail(`model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    }
    if (name in feeds) fail(`input '${name}' given twice`);
    const t = readNpy(file);
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length) fail(`missing inputs: ${missing.join(', ')}`);

  const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;
  let results;
  const times = [];
  try {
    for (let i = 0; i < args.repeat; i++) {
      const t0 = process.hrtime.bigint();
      results = await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } catch (e) {
    fail(`inference failed: ${e.message}`);
  }
  if (args.timing) {
    const warm = times.length > 1 ? times.slice(1) : times.slice();
    warm.sort((a, b) => a - b);
    process.stderr.write(`timing load_ms=${loadMs.toFixed(3)} first_ms=${times[0].toFixed(3)} ` +
                         `median_ms=${warm[Math.floor(warm.length / 2)].toFixed(4)} runs=${args.repeat} ` +
                         `threads=${args.threads} peak_rss_kb=${peakRssKb()}\n`);
  }

  try {
    fs.mkdirSync(args.outDir, { recursive: true });
  } catch (e) {
    fail(`cannot create ${args.outDir}: ${e.message}`);
  }
  const seen = new Map();
  for (const name of session.outputNames) {
    const t = results[name];
    const fileName = sanitise(name);
    if (seen.has(fileName)) fail(`outputs '${seen.get(fileName)}' and '${name}' both sanitise to '${fileName}'`);
    seen.set(fileName, name);
    const out = path.join(args.outDir, fileName + '.npy');
    writeNpy(out, t.type, t.dims.map(Number), t.data);
    process.stdout.write(`${name}: ${t.type} [${t.dims.join(', ')}] -> ${out}\n`);
  }
  if (typeof session.release === 'function') await session.release();
}

// The .npy helpers are shared with ort_stream.js, which requires this file.
module.exports = { fail, readNpy, writeNpy, sanitise, peakRssKb, loadOrt, createSession };

if (require.main === module) main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
