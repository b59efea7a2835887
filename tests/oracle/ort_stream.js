#!/usr/bin/env node
// Kiln's reference oracle for streaming (stateful) models: runs an ONNX model
// with onnxruntime-node (CPU execution provider) once per chunk of a stream, in
// one process and one session, feeding state outputs back as inputs.
//
//   node tests/oracle/ort_stream.js MODEL.onnx OUT_DIR --stream NAME=chunks.npy
//                                   [--carry OUTPUT=INPUT]... NAME=in.npy... [--threads N]
//
// chunks.npy holds T chunks along its leading axis: step t feeds chunks[t]
// (shape chunks.shape[1:]) as input NAME. Every other input is given as
// NAME=in.npy; `--carry OUTPUT=INPUT` feeds output OUTPUT of step t as input
// INPUT of step t+1, and INPUT's file is only its value at step 0. Each output
// is written as OUT_DIR/<output name>.npy with the steps stacked along a new
// leading axis: shape [T, ...] (an output's shape must not change between
// steps). Output names are sanitised as by ort_run.js, whose .npy reader and
// writer this script uses. Exits nonzero with a message on any failure.
'use strict';

const fs = require('fs');
const path = require('path');
const { fail, readNpy, writeNpy, sanitise, loadOrt, createSession } = require('./ort_run.js');

function usage() {
  return 'usage: node tests/oracle/ort_stream.js MODEL.onnx OUT_DIR --stream NAME=chunks.npy ' +
         '[--carry OUTPUT=INPUT]... NAME=in.npy... [--threads N]';
}

function splitPair(s, what) {
  const eq = s.indexOf('=');
  if (eq <= 0 || eq === s.length - 1) fail(`bad ${what} '${s}', expected A=B`);
  return [s.slice(0, eq), s.slice(eq + 1)];
}

function parseArgs(argv) {
  const pos = [];
  const carries = [];
  let threads = 1, stream = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(usage() + '\n');
      process.exit(0);
    } else if (a === '--threads') {
      const v = argv[++i];
      threads = Number(v);
      if (!Number.isInteger(threads) || threads < 1) fail(`--threads needs a positive integer, got '${v}'`);
    } else if (a === '--stream') {
      if (stream) fail('--stream given twice');
      if (i + 1 >= argv.length) fail('--stream needs NAME=chunks.npy');
      const [name, file] = splitPair(argv[++i], '--stream');
      stream = { name, file };
    } else if (a === '--carry') {
      if (i + 1 >= argv.length) fail('--carry needs OUTPUT=INPUT');
      const [output, input] = splitPair(argv[++i], '--carry');
      carries.push({ output, input });
    } else if (a.startsWith('--')) {
      fail(`unknown option '${a}'\n${usage()}`);
    } else {
      pos.push(a);
    }
  }
  if (pos.length < 2 || !stream) fail(`missing arguments\n${usage()}`);
  const [model, outDir, ...specs] = pos;
  const inputs = specs.map((s) => {
    const [name, file] = splitPair(s, 'input');
    return { name, file };
  });
  return { model, outDir, stream, carries, inputs, threads };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const ort = loadOrt();
  if (!fs.existsSync(args.model)) fail(`model not found: ${args.model}`);

  const session = await createSession(ort, args.model, args.threads);
  const hasInput = (name) => session.inputNames.includes(name);

  const feeds = {};
  for (const { name, file } of args.inputs) {
    if (!hasInput(name)) fail(`model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    if (name in feeds || name === args.stream.name) fail(`input '${name}' given twice`);
    const t = readNpy(file);
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  if (!hasInput(args.stream.name)) fail(`model has no input '${args.stream.name}' to stream`);
  for (const { output, input } of args.carries) {
    if (!session.outputNames.includes(output)) fail(`--carry: model has no output '${output}'`);
    if (!(input in feeds)) fail(`--carry: input '${input}' needs an initial value (${input}=FILE.npy)`);
  }
  const missing = session.inputNames.filter((n) => !(n in feeds) && n !== args.stream.name);
  if (missing.length) fail(`missing inputs: ${missing.join(', ')}`);

  const stream = readNpy(args.stream.file);
  if (stream.dims.length < 1 || stream.dims[0] < 1) fail(`${args.stream.file}: no chunks along the leading axis`);
  const steps = stream.dims[0];
  const chunkDims = stream.dims.slice(1);
  const chunkSize = chunkDims.reduce((a, b) => a * b, 1);

  const collected = {}; // output name -> { type, dims, parts: [typed arrays] }
  for (let t = 0; t < steps; t++) {
    feeds[args.stream.name] = new ort.Tensor(stream.type,
      stream.data.slice(t * chunkSize, (t + 1) * chunkSize), chunkDims);
    let results;
    try {
      results = await session.run(feeds);
    } catch (e) {
      fail(`inference failed at step ${t}: ${e.message}`);
    }
    for (const name of session.outputNames) {
      const r = results[name];
      const dims = r.dims.map(Number);
      if (!collected[name]) collected[name] = { type: r.type, dims, parts: [] };
      const c = collected[name];
      if (c.type !== r.type || c.dims.join(',') !== dims.join(',')) {
        fail(`output '${name}' changed from ${c.type}[${c.dims}] to ${r.type}[${dims}] at step ${t}`);
      }
      c.parts.push(r.data.slice());
    }
    for (const { output, input } of args.carries) feeds[input] = results[output];
  }

  try {
    fs.mkdirSync(args.outDir, { recursive: true });
  } catch (e) {
    fail(`cannot create ${args.outDir}: ${e.message}`);
  }
  const seen = new Map();
  for (const name of session.outputNames) {
    const c = collected[name];
    const fileName = sanitise(name);
    if (seen.has(fileName)) fail(`outputs '${seen.get(fileName)}' and '${name}' both sanitise to '${fileName}'`);
    seen.set(fileName, name);
    const per = c.parts[0].length;
    const all = new c.parts[0].constructor(per * steps);
    c.parts.forEach((p, t) => all.set(p, t * per));
    const out = path.join(args.outDir, fileName + '.npy');
    writeNpy(out, c.type, [steps, ...c.dims], all);
    process.stdout.write(`${name}: ${c.type} [${[steps, ...c.dims].join(', ')}] (${steps} steps) -> ${out}\n`);
  }
  if (typeof session.release === 'function') await session.release();
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
