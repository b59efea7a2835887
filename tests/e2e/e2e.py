#!/usr/bin/python3
"""Kiln end-to-end tests: compile and run a model with kiln, compare with ONNX Runtime.

  /usr/bin/python3 tests/e2e/e2e.py --kiln PATH_TO_KILN --work WORKDIR CASE [--seed N]

CASE is one of: mobilenet_v2, resnet18, fmnist, fmnist_accuracy,
fmnist_aarch64, fmnist_vit, fmnist_vit_accuracy, fmnist_gru,
fmnist_gru_accuracy, fmnist_int8, fmnist_vit_int8, fmnist_mixed, fmnist_int8_aarch64, fmnist_bf16,
fmnist_qdq, plan_fmnist, plan_fmnist_accel,
bert_tiny, bert_encoder,
silero_vad, vulkan_fmnist, vulkan_fmnist_tiled, vulkan_fmnist_accuracy, vulkan_mobilenet_v2,
vulkan_mobilenet_v2_tiled, vulkan_bert_encoder (or `all`).

Each case runs `kiln run MODEL --input NAME=in.npy ... --output DIR [--target T]`
and `node tests/oracle/ort_run.js MODEL DIR NAME=in.npy ...` on the same
inputs and compares every output with the tolerances in tests/e2e/tolerances.json.
Generated models are cached in WORKDIR/models/ (keyed by a hash of the script
that made them) and reused when present; each case's outputs go to
WORKDIR/<case>/ (wiped at the start of the case). Output files are matched by
name: ort_run.js and kiln both write <sanitised output name>.npy.
silero_vad streams a recording through a stateful model instead: Kiln's kept
runner is invoked once per chunk, tests/oracle/ort_stream.js runs the stream in
one process (see case_silero_vad).
Exit status: 0 pass, 1 mismatch or any failure, 2 usage error.

Needs only the python3 standard library and numpy, plus node with
tests/oracle/node_modules installed; the model export scripts (run as
subprocesses) need torch/torchvision; silero_vad needs espeak-ng and npm (it
fetches its model with models/fetch_silero_vad.py unless scripts/setup.sh did).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS_DIR = os.path.join(ROOT, "models")
ORT_RUN = os.path.join(ROOT, "tests", "oracle", "ort_run.js")
ORT_STREAM = os.path.join(ROOT, "tests", "oracle", "ort_stream.js")
TOLERANCES_FILE = os.path.join(ROOT, "tests", "e2e", "tolerances.json")

FMNIST_MODEL = os.path.join(MODELS_DIR, "fmnist_cnn.onnx")
FMNIST_VIT_MODEL = os.path.join(MODELS_DIR, "fmnist_vit.onnx")
FMNIST_GRU_MODEL = os.path.join(MODELS_DIR, "fmnist_gru.onnx")
FMNIST_SAMPLE = os.path.join(MODELS_DIR, "samples", "fmnist_sample.npy")
FMNIST_SAMPLE_LABELS = os.path.join(MODELS_DIR, "samples", "fmnist_sample_labels.txt")
FMNIST_BATCHES = 10
FMNIST_EVAL_BATCH = 1000  # the batch size kiln eval compiles the model for

DEFAULT_SEED = 1234


class Failure(Exception):
    """A test failure with a message; main() prints it and exits 1."""


def log(msg=""):
    print(msg, flush=True)


def load_tolerances(case):
    with open(TOLERANCES_FILE) as f:
        tol = json.load(f)
    merged = dict(tol["default"])
    merged.update(tol.get("cases", {}).get(case, {}))
    return merged


class Env:
    def __init__(self, args):
        self.kiln = os.path.abspath(args.kiln)
        self.work = os.path.abspath(args.work)
        self.seed = args.seed
        self.node = args.node
        self.python = args.python
        self.ort_threads = args.ort_threads
        self.timeout = args.timeout
        self.model_cache = os.path.join(self.work, "models")

    def case_dir(self, case):
        d = os.path.join(self.work, case)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d


def run_cmd(cmd, what, timeout):
    log("$ " + " ".join(cmd))
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, timeout=timeout)
    except FileNotFoundError as e:
        raise Failure(f"{what}: cannot run {cmd[0]}: {e}")
    except subprocess.TimeoutExpired:
        raise Failure(f"{what}: timed out after {timeout} s")
    if proc.returncode != 0:
        raise Failure(f"{what} failed with exit status {proc.returncode}")
    return time.time() - t0


# ---- models ---------------------------------------------------------------

def script_tag(script):
    """A short hash of a generator script: cached outputs are keyed by it, so
    editing the script regenerates them instead of reusing stale files."""
    with open(script, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:10]


def cached_model(env, name, script, export_cmd):
    """Returns WORKDIR/models/<name>-<script hash>.onnx, exporting it first if absent."""
    path = os.path.join(env.model_cache, f"{name}-{script_tag(script)}.onnx")
    if os.path.exists(path):
        log(f"reusing {path}")
        return path
    os.makedirs(env.model_cache, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.onnx"
    try:
        run_cmd(export_cmd(tmp), f"exporting {name}", env.timeout)
        os.replace(tmp, path)  # atomic: a killed export leaves no half file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def torchvision_model(env, name):
    script = os.path.join(MODELS_DIR, "export_torchvision.py")
    return cached_model(env, name, script,
                        lambda out: [env.python, script, "--model", name, "-o", out])


def bert_tiny_model(env):
    script = os.path.join(MODELS_DIR, "export_bert_tiny.py")
    return cached_model(env, "bert_tiny", script, lambda out: [env.python, script, "-o", out])


def bert_encoder_model(env):
    script = os.path.join(MODELS_DIR, "export_bert_encoder.py")
    return cached_model(env, "bert_encoder", script, lambda out: [env.python, script, "-o", out])


def bert_vocab(script="export_bert_tiny.py"):
    """The vocabulary size, read from the export script so the two never drift."""
    with open(os.path.join(MODELS_DIR, script)) as f:
        m = re.search(r"^VOCAB\s*=\s*(\d+)", f.read(), re.M)
    if not m:
        raise Failure(f"cannot find VOCAB in models/{script}")
    return int(m.group(1))


# ---- running kiln and the oracle ------------------------------------------

def input_args(inputs):
    return [f"{name}={path}" for name, path in inputs.items()]


def check_ort_installed():
    if not os.path.isdir(os.path.join(ROOT, "tests", "oracle", "node_modules", "onnxruntime-node")):
        raise Failure("onnxruntime-node is missing: run scripts/setup.sh "
                      "(or: cd tests/oracle && ONNXRUNTIME_NODE_INSTALL=skip npm install)")


def run_ort(env, model, inputs, out_dir):
    check_ort_installed()
    cmd = [env.node, ORT_RUN, model, out_dir] + input_args(inputs)
    cmd += ["--threads", str(env.ort_threads)]
    return run_cmd(cmd, "onnxruntime (ort_run.js)", env.timeout)


def run_kiln(env, model, inputs, out_dir, target=None, extra=()):
    if not os.path.isfile(env.kiln) or not os.access(env.kiln, os.X_OK):
        raise Failure(f"kiln not found or not executable: {env.kiln}")
    cmd = [env.kiln, "run", model]
    for spec in input_args(inputs):
        cmd += ["--input", spec]
    cmd += ["--output", out_dir]
    if target:
        cmd += ["--target", target]
    cmd += list(extra)
    return run_cmd(cmd, "kiln run", env.timeout)


def output_names(ort_dir):
    names = sorted(f[:-4] for f in os.listdir(ort_dir) if f.endswith(".npy"))
    if not names:
        raise Failure(f"onnxruntime wrote no outputs to {ort_dir}")
    return names


def compare_array(name, kiln, ort, tol):
    """Compares one output; returns (ok, message)."""
    if kiln.shape != ort.shape:
        return False, f"{name}: shape mismatch: kiln {kiln.shape}, onnxruntime {ort.shape}"
    if kiln.dtype != ort.dtype:
        return False, f"{name}: dtype mismatch: kiln {kiln.dtype}, onnxruntime {ort.dtype}"
    if not np.issubdtype(ort.dtype, np.floating):
        bad = int(np.count_nonzero(kiln != ort))
        return bad == 0, (f"{name}: {ort.dtype}{list(ort.shape)}: "
                          f"{bad} of {ort.size} elements differ (exact match required)")
    k64, o64 = kiln.astype(np.float64), ort.astype(np.float64)
    if not np.all(np.isfinite(o64)):
        return False, f"{name}: onnxruntime output is not finite; cannot compare"
    scale = float(np.max(np.abs(o64))) if o64.size else 0.0
    min_scale = float(tol.get("min_reference_scale", 0.0))
    if scale < min_scale:
        return False, (f"{name}: onnxruntime's output is degenerate (max|ort| = {scale:.3g} < "
                       f"{min_scale:g}): the comparison would prove nothing")
    rtol = float(tol["rtol"])
    atol = float(tol["atol_scale"]) * max(1.0, scale)
    diff = np.abs(k64 - o64)
    nonfinite = int(np.count_nonzero(~np.isfinite(k64)))
    max_abs = float(np.max(diff)) if diff.size else 0.0
    max_rel = max_abs / scale if scale > 0 else max_abs
    close = np.isclose(k64, o64, rtol=rtol, atol=atol)
    bad = int(np.count_nonzero(~close))
    msg = (f"{name}: {ort.dtype}{list(ort.shape)}: max abs err {max_abs:.3e}, "
           f"max rel err {max_rel:.3e} (max|err| / max|ort|, max|ort| = {scale:.4g}); "
           f"rtol {rtol:g}, atol {atol:.3g}; {bad} of {ort.size} elements out of tolerance")
    if nonfinite:
        msg += f"; {nonfinite} non-finite values from kiln"
    if bad:
        i = np.unravel_index(int(np.argmax(diff - (rtol * np.abs(o64) + atol))), o64.shape)
        msg += f"; worst at {tuple(int(v) for v in i)}: kiln {k64[i]:.7g}, onnxruntime {o64[i]:.7g}"
    return bad == 0 and nonfinite == 0, msg


def load_output(d, name, who):
    path = os.path.join(d, name + ".npy")
    if not os.path.exists(path):
        raise Failure(f"{who} did not write {path}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a failure
        raise Failure(f"cannot read {who}'s {path}: {e}")


def compare_dirs(kiln_dir, ort_dir, tol):
    names = output_names(ort_dir)
    extra = sorted(set(f[:-4] for f in os.listdir(kiln_dir) if f.endswith(".npy")) - set(names)) \
        if os.path.isdir(kiln_dir) else []
    ok = True
    outputs = {}
    for name in names:
        ort = load_output(ort_dir, name, "onnxruntime")
        kiln = load_output(kiln_dir, name, "kiln")
        good, msg = compare_array(name, kiln, ort, tol)
        log(("PASS " if good else "FAIL ") + msg)
        ok &= good
        outputs[name] = (kiln, ort)
    if extra:
        log(f"FAIL kiln wrote outputs the model does not have: {', '.join(extra)}")
        ok = False
    return ok, outputs


def compare_once(env, case, model, inputs, target=None, extra=()):
    """Runs kiln and onnxruntime once on `inputs` and compares all outputs."""
    d = env.case_dir(case)
    ort_dir, kiln_dir = os.path.join(d, "ort"), os.path.join(d, "kiln")
    t_ort = run_ort(env, model, inputs, ort_dir)
    t_kiln = run_kiln(env, model, inputs, kiln_dir, target, extra)
    log(f"onnxruntime {t_ort:.2f} s, kiln run {t_kiln:.2f} s (compile + run)")
    ok, outputs = compare_dirs(kiln_dir, ort_dir, load_tolerances(case))
    if not ok:
        raise Failure(f"{case}: kiln's outputs differ from onnxruntime's")
    return outputs


# ---- cases ----------------------------------------------------------------

def case_torchvision(env, case, target=None, extra=()):
    model = torchvision_model(env, case.replace("vulkan_", "").replace("_tiled", ""))
    d = os.path.join(env.work, case + "_inputs")
    os.makedirs(d, exist_ok=True)
    log(f"input seed {env.seed}")
    x = np.random.default_rng(env.seed).standard_normal((1, 3, 224, 224)).astype(np.float32)
    path = os.path.join(d, "input.npy")
    np.save(path, x)
    outputs = compare_once(env, case, model, {"input": path}, target, extra)
    kiln, ort = outputs["output"]
    log(f"top-1 class: kiln {int(kiln.argmax())}, onnxruntime {int(ort.argmax())}")


def case_fmnist(env, case, target=None, model=FMNIST_MODEL, extra=()):
    outputs = compare_once(env, case, model, {"input": FMNIST_SAMPLE}, target, extra)
    kiln, ort = outputs["logits"]
    labels = np.loadtxt(FMNIST_SAMPLE_LABELS, dtype=np.int64, ndmin=1)
    log(f"labels               {labels.tolist()}")
    log(f"kiln predictions     {kiln.argmax(1).tolist()}")
    log(f"onnxruntime predicts {ort.argmax(1).tolist()}")


def fmnist_test_set(env):
    """Returns the paths of the Fashion-MNIST test set as .npy files
    (models/train_fmnist.py --export-test-set-only), exporting them first if absent."""
    script = os.path.join(MODELS_DIR, "train_fmnist.py")
    test_dir = os.path.join(env.work, "fmnist_testset-" + script_tag(script))
    images_path = os.path.join(test_dir, "test_images.npy")
    labels_path = os.path.join(test_dir, "test_labels.npy")
    if os.path.exists(images_path) and os.path.exists(labels_path):
        log(f"reusing {test_dir}")
    else:
        tmp = f"{test_dir}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            run_cmd([env.python, script, "--export-test-set-only", "--out-dir", tmp],
                    "exporting the Fashion-MNIST test set", env.timeout)
            os.replace(tmp, test_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return images_path, labels_path


def check_accuracy(case, model, kiln_acc, ort_acc, tol):
    if ort_acc < float(tol["min_accuracy"]):
        raise Failure(f"onnxruntime accuracy {ort_acc:.4f} is below {tol['min_accuracy']}: "
                      f"is models/{os.path.basename(model)} broken?")
    if kiln_acc != ort_acc:
        raise Failure(f"kiln accuracy {kiln_acc:.4f} != onnxruntime accuracy {ort_acc:.4f}")


def case_fmnist_accuracy(env, case):
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    images = np.load(images_path)
    labels = np.load(labels_path)
    if images.shape[0] != labels.shape[0] or images.shape[0] % FMNIST_BATCHES:
        raise Failure(f"unexpected test set: images {images.shape}, labels {labels.shape}")

    d = env.case_dir(case)
    batches = np.split(images, FMNIST_BATCHES)
    kiln_pred, ort_pred = [], []
    t_kiln = t_ort = 0.0
    for i, batch in enumerate(batches):
        in_path = os.path.join(d, f"batch_{i}.npy")
        np.save(in_path, np.ascontiguousarray(batch))
        ort_dir, kiln_dir = os.path.join(d, f"ort_{i}"), os.path.join(d, f"kiln_{i}")
        t_ort += run_ort(env, FMNIST_MODEL, {"input": in_path}, ort_dir)
        t_kiln += run_kiln(env, FMNIST_MODEL, {"input": in_path}, kiln_dir)
        ort = load_output(ort_dir, "logits", "onnxruntime")
        kiln = load_output(kiln_dir, "logits", "kiln")
        if kiln.shape != ort.shape:
            raise Failure(f"batch {i}: kiln logits {kiln.shape}, onnxruntime {ort.shape}")
        kiln_pred.append(kiln.argmax(1))
        ort_pred.append(ort.argmax(1))
    kiln_pred, ort_pred = np.concatenate(kiln_pred), np.concatenate(ort_pred)
    kiln_acc = float(np.mean(kiln_pred == labels))
    ort_acc = float(np.mean(ort_pred == labels))
    disagree = int(np.count_nonzero(kiln_pred != ort_pred))
    log(f"{len(labels)} test images in {FMNIST_BATCHES} batches: "
        f"onnxruntime {t_ort:.2f} s, kiln run {t_kiln:.2f} s")
    log(f"kiln accuracy {kiln_acc:.4f}, onnxruntime {ort_acc:.4f} "
        f"({disagree} predictions differ)")
    check_accuracy(case, FMNIST_MODEL, kiln_acc, ort_acc, tol)


EVAL_KILN = re.compile(r"^top-1: ([0-9.]+) \((\d+) of (\d+)\)$", re.M)
EVAL_ORT = re.compile(r"^onnxruntime top-1: ([0-9.]+) \((\d+) of (\d+)\); "
                      r"predictions agree on ([0-9.]+)$", re.M)


def run_kiln_eval(env, model, images_path, labels_path, extra, keep):
    """`kiln eval MODEL --vs onnxruntime` on the test set in batches of FMNIST_EVAL_BATCH
    (plus `extra` options); returns its stdout."""
    if not os.path.isfile(env.kiln) or not os.access(env.kiln, os.X_OK):
        raise Failure(f"kiln not found or not executable: {env.kiln}")
    cmd = [env.kiln, "eval", model, "--data", images_path, "--labels", labels_path,
           "--batch", str(FMNIST_EVAL_BATCH), "--vs", "onnxruntime", "--keep", keep] + list(extra)
    log("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, timeout=env.timeout, stdout=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        raise Failure(f"kiln eval: timed out after {env.timeout} s")
    log(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise Failure(f"kiln eval failed with exit status {proc.returncode}")
    return proc.stdout


def case_fmnist_eval(env, case, model, extra=()):
    """The whole test set through `kiln eval MODEL --vs onnxruntime`: the model is
    compiled once for FMNIST_EVAL_BATCH images and both engines see the same batches."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    d = env.case_dir(case)
    t0 = time.time()
    out = run_kiln_eval(env, model, images_path, labels_path, list(extra), os.path.join(d, "kiln"))
    mk, mo = EVAL_KILN.search(out), EVAL_ORT.search(out)
    if not mk or not mo:
        raise Failure("cannot find kiln's and onnxruntime's top-1 lines in kiln eval's output")
    kiln_right, n = int(mk.group(2)), int(mk.group(3))
    ort_right, ort_n = int(mo.group(2)), int(mo.group(3))
    if n != 10000 or ort_n != n:
        raise Failure(f"kiln eval scored {n} (kiln) and {ort_n} (onnxruntime) images, expected 10000")
    kiln_acc, ort_acc = kiln_right / n, ort_right / n
    log(f"{n} test images in batches of {FMNIST_EVAL_BATCH} ({time.time() - t0:.1f} s): "
        f"kiln accuracy {kiln_acc:.4f}, onnxruntime {ort_acc:.4f}, "
        f"predictions agree on {float(mo.group(4)):.4f}")
    check_accuracy(case, model, kiln_acc, ort_acc, tol)


FMNIST_TRAIN_IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
QUANT_SUMMARY = re.compile(r"^quantised (\d+) of (\d+) layers", re.M)


NM_SUMMARY = re.compile(r"N:M: (\d+) layer\(s\) sparse")


def kiln_eval_int8(env, model, images_path, labels_path, extra, d):
    """kiln eval --vs onnxruntime with quantisation options `extra`; returns (kiln right,
    ort right, n, stdout)."""
    out = run_kiln_eval(env, model, images_path, labels_path, extra, d)
    mk, mo, mq = EVAL_KILN.search(out), EVAL_ORT.search(out), QUANT_SUMMARY.search(out)
    if not mk or not mo or not mq:
        raise Failure("cannot find the top-1 lines and the quantisation summary in kiln eval's output")
    if mq.group(1) != mq.group(2) or int(mq.group(1)) == 0:
        raise Failure(f"only {mq.group(1)} of {mq.group(2)} layers were quantised")
    return int(mk.group(2)), int(mo.group(2)), int(mk.group(3)), out


def case_fmnist_bf16(env, case):
    """bf16 activations and weights (no calibration) on the CNN: top-1 within max_drop
    of ONNX Runtime's fp32."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    right, ort_right, n, _ = kiln_eval_int8(env, FMNIST_MODEL, images_path, labels_path, ["--quantize", "bf16"],
                                            os.path.join(env.case_dir(case), "kiln"))
    drop = (ort_right - right) / n
    log(f"bf16 top-1 {right / n:.4f}, onnxruntime fp32 {ort_right / n:.4f}: drop {drop * 100:.2f} points")
    if drop > float(tol["max_drop"]):
        raise Failure(f"bf16 accuracy drop {drop:.4f} exceeds {tol['max_drop']}")


def case_fmnist_qdq(env, case):
    """A pre-quantised (QDQ) model: Kiln's plan for the CNN written as QDQ ONNX by
    models/export_qdq.py, then that model through kiln eval --vs onnxruntime. Kiln runs
    the Q/DQ pairs as float arithmetic, ONNX Runtime as integer operators: their rounding
    differs slightly, so predictions must agree on min_agreement of the images and the
    top-1 accuracies within max_diff."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    d = env.case_dir(case)
    plan_dir = os.path.join(d, "plan")
    run_cmd([env.kiln, "compile", FMNIST_MODEL, "-o", plan_dir, "--shape", f"input={FMNIST_EVAL_BATCH},1,28,28",
             "--quantize", "int8", "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"],
            "kiln compile --quantize", env.timeout)
    qdq = os.path.join(d, "fmnist_cnn_qdq.onnx")
    run_cmd([env.python, os.path.join(MODELS_DIR, "export_qdq.py"), FMNIST_MODEL,
             os.path.join(plan_dir, "fmnist_cnn.plan.json"), "-o", qdq], "export_qdq.py", env.timeout)
    out = run_kiln_eval(env, qdq, images_path, labels_path, [], os.path.join(d, "kiln"))
    mk, mo = EVAL_KILN.search(out), EVAL_ORT.search(out)
    if not mk or not mo:
        raise Failure("cannot find kiln's and onnxruntime's top-1 lines in kiln eval's output")
    kiln_acc, ort_acc, agree = float(mk.group(1)), float(mo.group(1)), float(mo.group(4))
    log(f"QDQ model: kiln top-1 {kiln_acc:.4f}, onnxruntime {ort_acc:.4f}, predictions agree on {agree:.4f}")
    if agree < float(tol["min_agreement"]) or abs(kiln_acc - ort_acc) > float(tol["max_diff"]):
        raise Failure(f"QDQ model: agreement {agree:.4f} (min {tol['min_agreement']}), accuracy difference "
                      f"{abs(kiln_acc - ort_acc):.4f} (max {tol['max_diff']})")


def case_fmnist_int8(env, case, model, replan):
    """int8 post-training quantisation, calibrated on 500 training images, scored on the
    whole test set: the drop against ONNX Runtime's fp32 top-1 must stay within
    max_drop. With `replan`, the plan kiln wrote is fed back with --plan and must give
    the same predictions count."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    if not os.path.isfile(FMNIST_TRAIN_IMAGES):
        raise Failure(f"calibration images not found: {FMNIST_TRAIN_IMAGES} (Debian dataset-fashion-mnist)")
    d = env.case_dir(case)
    kiln_right, ort_right, n, _ = kiln_eval_int8(
        env, model, images_path, labels_path,
        ["--quantize", "int8", "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"], os.path.join(d, "calibrated"))
    if n != 10000:
        raise Failure(f"kiln eval scored {n} images, expected 10000")
    drop = (ort_right - kiln_right) / n
    log(f"int8 top-1 {kiln_right / n:.4f}, onnxruntime fp32 {ort_right / n:.4f}: drop {drop * 100:.2f} points")
    if drop > float(tol["max_drop"]):
        raise Failure(f"int8 accuracy drop {drop:.4f} exceeds {tol['max_drop']}")
    if replan:
        plan = os.path.join(d, "calibrated", "model.plan.json")
        again, _, _, _ = kiln_eval_int8(env, model, images_path, labels_path, ["--plan", plan],
                                        os.path.join(d, "replanned"))
        if again != kiln_right:
            raise Failure(f"the written plan, fed back with --plan, scored {again} instead of {kiln_right}")


def case_fmnist_nm(env, case, model, extra, against_magnitude=False):
    """N:M sparsity: 2:4 on every layer with a reduction of 32 or more (plus `extra`
    options), pruned with reconstruction from 500 calibration images, scored on the
    whole test set: the drop against ONNX Runtime's fp32 top-1 must stay within
    max_drop. With `against_magnitude`, the same pattern pruned by magnitude alone (no
    calibration) must score lower: the reconstruction has to earn its keep."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    if not os.path.isfile(FMNIST_TRAIN_IMAGES):
        raise Failure(f"calibration images not found: {FMNIST_TRAIN_IMAGES} (Debian dataset-fashion-mnist)")
    d = env.case_dir(case)

    def score(options, sub):
        out = run_kiln_eval(env, model, images_path, labels_path, options, os.path.join(d, sub))
        mk, mo, ms = EVAL_KILN.search(out), EVAL_ORT.search(out), NM_SUMMARY.search(out)
        if not mk or not mo or not ms or int(ms.group(1)) == 0:
            raise Failure("cannot find the top-1 lines and a non-empty N:M summary in kiln eval's output")
        return int(mk.group(2)), int(mo.group(2)), int(mk.group(3))

    right, ort_right, n = score(["--sparsify", "2:4", "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"] + extra,
                                "reconstructed")
    drop = (ort_right - right) / n
    log(f"2:4 {' '.join(extra)} top-1 {right / n:.4f}, onnxruntime fp32 {ort_right / n:.4f}: "
        f"drop {drop * 100:.2f} points")
    if drop > float(tol["max_drop"]):
        raise Failure(f"2:4 accuracy drop {drop:.4f} exceeds {tol['max_drop']}")
    if against_magnitude:
        mag, _, _ = score(["--sparsify", "2:4"] + extra, "magnitude")
        log(f"2:4 by magnitude: top-1 {mag / n:.4f}")
        if mag >= right:
            raise Failure(f"magnitude pruning scored {mag}, reconstruction {right}: no better")


SMARTDEAL_SUMMARY = re.compile(r"^SmartDeal: (\d+) layer\(s\) decomposed; conv/matmul weights (\d+) bytes "
                               r"\(dense layers at int8\) vs (\d+) dense int8", re.M)
SMARTDEAL_WEIGHTS_FILE = re.compile(r"^SmartDeal: weights file (\d+) bytes$", re.M)
# docs/SMARTDEAL.md's best whole-model setting (mix-b2): conv1 has too few weights to gain.
FMNIST_SMARTDEAL_LAYERS = "/0/Conv=dense,/4/Conv=b3:d0.75,/9/Gemm=b2:d0.35,/11/Gemm=b3:d1"


def case_fmnist_smartdeal(env, case, model, layers, expect_layers):
    """SmartDeal decomposition with per-layer settings `layers`, fitted to the Gram
    matrices of 500 calibration images, scored on the whole test set. The top-1 drop
    against ONNX Runtime's fp32 must stay within max_drop; the conv/matmul weight bytes
    kiln prints (dense layers counted at int8) must be at least min_ratio_vs_int8 times
    smaller than dense int8, agree with the per-layer report in the artifact, and the
    weights file must be smaller than dense int8 weights (it carries the compressed
    arrays, not rebuilt dense weights)."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    if not os.path.isfile(FMNIST_TRAIN_IMAGES):
        raise Failure(f"calibration images not found: {FMNIST_TRAIN_IMAGES} (Debian dataset-fashion-mnist)")
    keep = os.path.join(env.case_dir(case), "kiln")
    out = run_kiln_eval(env, model, images_path, labels_path,
                        ["--decompose", "smartdeal", "--decompose-layers", layers,
                         "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"], keep)
    mk, mo, ms, mw = EVAL_KILN.search(out), EVAL_ORT.search(out), SMARTDEAL_SUMMARY.search(out), \
        SMARTDEAL_WEIGHTS_FILE.search(out)
    if not mk or not mo or not ms or not mw:
        raise Failure("cannot find the top-1 lines and the SmartDeal summary in kiln eval's output")
    right, ort_right, n = int(mk.group(2)), int(mo.group(2)), int(mk.group(3))
    made, stored, int8, kw = int(ms.group(1)), int(ms.group(2)), int(ms.group(3)), int(mw.group(1))
    if made != expect_layers:
        raise Failure(f"{made} layer(s) decomposed, expected {expect_layers}")
    reports = [os.path.join(r, f) for r, _, fs in os.walk(keep) for f in fs if f.endswith(".decompose.json")]
    if len(reports) != 1:
        raise Failure(f"expected one .decompose.json under {keep}, found {reports}")
    with open(reports[0]) as f:
        rows = json.load(f)["layers"]
    again = sum(r["int8_bytes"] if r["setting"] == "dense" else r["bytes"] for r in rows)
    if again != stored or sum(r["int8_bytes"] for r in rows) != int8:
        raise Failure(f"printed {stored} / {int8} bytes, the report adds up to {again}")
    drop, ratio = (ort_right - right) / n, int8 / stored
    log(f"SmartDeal {layers}: top-1 {right / n:.4f}, onnxruntime fp32 {ort_right / n:.4f}: drop {drop * 100:.2f} "
        f"points; weights {stored} bytes vs {int8} dense int8 ({ratio:.2f}x); weights file {kw} bytes")
    if drop > float(tol["max_drop"]):
        raise Failure(f"SmartDeal accuracy drop {drop:.4f} exceeds {tol['max_drop']}")
    if ratio < float(tol["min_ratio_vs_int8"]):
        raise Failure(f"SmartDeal weights are {ratio:.2f}x smaller than int8, below {tol['min_ratio_vs_int8']}")
    if kw >= int8:
        raise Failure(f"the weights file ({kw} bytes) is not smaller than dense int8 weights ({int8} bytes)")


BUTTERFLY_SUMMARY = re.compile(r"^butterfly: (\d+) layer\(s\) factorised; their parameters (\d+) -> (\d+)", re.M)
# The MLP of the ViT's last block (64 x 128 and 128 x 64, n = 128): of the choices
# measured (docs/BUTTERFLY.md), the one that costs least accuracy for its parameters.
VIT_BUTTERFLY_LAYERS = ["/blocks/blocks.2/mlp/mlp.0/MatMul", "/blocks/blocks.2/mlp/mlp.2/MatMul"]


def case_fmnist_vit_butterfly(env, case):
    """Butterfly factorisation of the MLP of the ViT's last block, fitted on the Gram
    matrices of 500 calibration images, scored on the whole test set:
    - the top-1 drop against ONNX Runtime's fp32 stays within max_drop;
    - each factorised layer holds 2 n log2(n) parameters (n the power of two >= K, N),
      and the weights file is smaller than the dense build's by exactly 4 bytes per
      parameter removed: the factors ship, not the dense weights."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    if not os.path.isfile(FMNIST_TRAIN_IMAGES):
        raise Failure(f"calibration images not found: {FMNIST_TRAIN_IMAGES} (Debian dataset-fashion-mnist)")
    d = env.case_dir(case)
    layers = ",".join(VIT_BUTTERFLY_LAYERS)

    out = run_kiln_eval(env, FMNIST_VIT_MODEL, images_path, labels_path,
                        ["--butterfly", layers, "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"],
                        os.path.join(d, "calibrated"))
    mk, mo, ms = EVAL_KILN.search(out), EVAL_ORT.search(out), BUTTERFLY_SUMMARY.search(out)
    if not mk or not mo or not ms:
        raise Failure("cannot find the top-1 lines and the butterfly summary in kiln eval's output")
    if int(ms.group(1)) != len(VIT_BUTTERFLY_LAYERS):
        raise Failure(f"{ms.group(1)} layers factorised, expected {len(VIT_BUTTERFLY_LAYERS)}")
    right, ort_right, n = int(mk.group(2)), int(mo.group(2)), int(mk.group(3))
    if n != 10000:
        raise Failure(f"kiln eval scored {n} images, expected 10000")
    drop = (ort_right - right) / n
    log(f"butterfly (calibrated) top-1 {right / n:.4f}, onnxruntime fp32 {ort_right / n:.4f}: "
        f"drop {drop * 100:.2f} points")
    if drop > float(tol["max_drop"]):
        raise Failure(f"butterfly accuracy drop {drop:.4f} exceeds {tol['max_drop']}")

    with open(os.path.join(d, "calibrated", "model.butterfly.json")) as f:
        report = json.load(f)["layers"]
    removed = 0
    for layer in report:
        k, m = layer["reduction"], layer["out_channels"]
        size = 2
        while size < max(k, m):
            size *= 2
        expect = 2 * size * (size.bit_length() - 1)
        if layer["n"] != size or layer["butterfly_params"] != expect or layer["dense_params"] != k * m:
            raise Failure(f"{layer['name']}: {layer['dense_params']} -> {layer['butterfly_params']} parameters at "
                          f"n = {layer['n']}, expected {k * m} -> {expect} at n = {size}")
        removed += k * m - expect
        log(f"{layer['name']}: {k} x {m}, {k * m} -> {expect} parameters, output error on the calibration "
            f"data {layer['output_rel_error'] * 100:.1f}%")
    # Exact: these layers' N (128, 64) are whole packing panels, so their dense packed
    # form is K x N floats and nothing else in the weights file changes.
    run_cmd([env.kiln, "compile", FMNIST_VIT_MODEL, "--shape", f"input={FMNIST_EVAL_BATCH},1,28,28", "--name", "model",
             "-o", os.path.join(d, "dense")], "kiln compile (dense)", env.timeout)
    dense_kw = os.path.getsize(os.path.join(d, "dense", "model.kw"))
    bfly_kw = os.path.getsize(os.path.join(d, "calibrated", "model.kw"))
    log(f"weights file: dense {dense_kw} B, butterfly {bfly_kw} B ({removed} parameters removed)")
    if dense_kw - bfly_kw != 4 * removed:
        raise Failure(f"the weights file shrank by {dense_kw - bfly_kw} B, expected {4 * removed} B")


def case_int8_aarch64(env, case):
    """One int8 plan (int8 and int4 layers), run on x86-64 (AVX-512 VNNI where the
    machine has it) and on aarch64 under qemu (portable C kernels, and SDOT kernels for
    --cpu cortex-a76): the logits must be identical bit for bit, since every path
    computes the same integers and the same single-rounding epilogue."""
    d = env.case_dir(case)
    plan_dir = os.path.join(d, "plan")
    run_cmd([env.kiln, "compile", FMNIST_MODEL, "-o", plan_dir, "--shape", "input=4,1,28,28", "--quantize",
             "int8", "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "200"], "kiln compile --quantize", env.timeout)
    plan_path = os.path.join(plan_dir, "fmnist_cnn.plan.json")
    with open(plan_path) as f:
        plan = json.load(f)
    plan["layers"][1]["bits"] = 4  # one layer at int4: both weight formats on both targets
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    outs = {}
    # aarch64 twice: generic armv8-a (portable C kernels) and a Cortex-A76 (SDOT kernels).
    for label, target, extra in (("x86-64", "x86-64", []), ("aarch64", "aarch64", []),
                                 ("aarch64-sdot", "aarch64", ["--cpu", "cortex-a76"])):
        out = os.path.join(d, label)
        run_kiln(env, FMNIST_MODEL, {"input": FMNIST_SAMPLE}, out, target=target, extra=["--plan", plan_path] + extra)
        outs[label] = load_output(out, "logits", f"kiln {label}")
    a = outs["x86-64"]
    for label in ("aarch64", "aarch64-sdot"):
        b = outs[label]
        if a.shape != b.shape or a.tobytes() != b.tobytes():
            raise Failure(f"int8 logits differ between x86-64 and {label}: max |diff| {np.max(np.abs(a - b))}")
    log(f"int8 logits {a.shape} identical on x86-64, aarch64 and aarch64 with SDOT")


SEARCH_CHOSE = re.compile(r"^search: chose ([0-9.]+) bits per weight", re.M)


def case_fmnist_mixed(env, case):
    """Mixed int8/int4 searched under --budget bits=4.5 on the CNN: at most 5 bits per
    weight on average, a top-1 drop within max_drop of ONNX Runtime's fp32, and more
    right than uniform int4 (the smaller neighbour)."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    d = env.case_dir(case)
    calib = ["--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"]
    mixed, ort_right, n, out = kiln_eval_int8(env, FMNIST_MODEL, images_path, labels_path,
                                              ["--quantize", "mixed", "--budget", "bits=4.5"] + calib,
                                              os.path.join(d, "mixed"))
    m = SEARCH_CHOSE.search(out)
    if not m:
        raise Failure("cannot find the search's summary line")
    bits = float(m.group(1))
    uniform, _, _, _ = kiln_eval_int8(env, FMNIST_MODEL, images_path, labels_path, ["--quantize", "int4"] + calib,
                                      os.path.join(d, "int4"))
    drop = (ort_right - mixed) / n
    log(f"mixed ({bits:.2f} bits/weight) top-1 {mixed / n:.4f}, uniform int4 {uniform / n:.4f}, "
        f"onnxruntime fp32 {ort_right / n:.4f}")
    if bits > 5.0:
        raise Failure(f"the search chose {bits} bits per weight, more than 5")
    if drop > float(tol["max_drop"]):
        raise Failure(f"mixed-precision accuracy drop {drop:.4f} exceeds {tol['max_drop']}")
    if mixed <= uniform:
        raise Failure(f"mixed precision ({mixed}) is not better than uniform int4 ({uniform})")


PLAN_CHOSEN = re.compile(r"^chosen \((\w+) search\): top-1 ([0-9.]+) \(fp32 ([0-9.]+), drop (-?[0-9.]+) points\), "
                         r"latency ([0-9.]+) ms \(fp32 ([0-9.]+)", re.M)
PLAN_TRIAL = re.compile(r"^plan: \[\d+/\d+\] .*output SQNR.*$", re.M)
EVAL_TOP1 = re.compile(r"^top-1: ([0-9.]+) \((\d+) of (\d+)\)", re.M)


def run_capture(cmd, what, timeout):
    """Runs cmd, echoing and returning its stdout; Failure on a non-zero exit."""
    log("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, timeout=timeout, stdout=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        raise Failure(f"{what}: timed out after {timeout} s")
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        raise Failure(f"{what} failed with exit status {proc.returncode}")
    return proc.stdout


def check_report_renders(html, d):
    """Loads report.html in headless Chromium: the page's script must run without an
    error and draw its plots (it counts the points it drew into data-rendered)."""
    chromium = shutil.which("chromium")
    if not chromium:
        raise Failure("chromium is not installed (scripts/setup.sh installs it)")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=" + os.path.join(d, "chromium-profile")]
    url = "file://" + os.path.abspath(html)
    proc = subprocess.run(base + ["--dump-dom", url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          timeout=180)
    dom = proc.stdout
    err = re.search(r'data-error="([^"]*)"', dom)
    if err:
        raise Failure(f"report.html: script error: {err.group(1)}")
    drawn = re.search(r'data-rendered="(\d+)"', dom)
    if not drawn or int(drawn.group(1)) < 3:
        raise Failure("report.html: the plots were not drawn")
    if dom.count("<polyline") < 1 or dom.count("<tr") < 5:
        raise Failure("report.html: the front or the tables are missing")
    # A screenshot beside it, for a person to look at.
    subprocess.run(base + ["--window-size=1150,1900", "--screenshot=" + os.path.join(d, "report.png"), url],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    log(f"report.html rendered: {drawn.group(1)} points drawn")


def case_plan_fmnist(env, case):
    """kiln plan on the CNN (quantisation, 2:4 and SmartDeal choices; the smallest latency
    within a 1-point drop): the chosen plan is within the drop and faster than fp32; fed
    back through kiln eval --plan it gives the same top-1 on the same samples; a second
    search with another budget resumes from the cache without rebuilding any trial; the
    report renders in headless Chromium."""
    images_path, labels_path = fmnist_test_set(env)
    d = env.case_dir(case)
    out_dir = os.path.join(d, "plan")
    common = [env.kiln, "plan", FMNIST_MODEL, "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "200",
              "--eval", images_path, "--labels", labels_path, "--eval-limit", "1000", "--sens-samples", "64",
              "--techniques", "quant,nm,smartdeal", "--runs", "100", "-o", out_dir]
    out = run_capture(common + ["--budget", "latency", "--max-drop", "1.0"], "kiln plan", env.timeout)
    m = PLAN_CHOSEN.search(out)
    if not m:
        raise Failure("cannot find the planner's 'chosen' line")
    top1, fp32, drop, ms, fp32_ms = float(m.group(2)), float(m.group(3)), float(m.group(4)), float(m.group(5)), \
        float(m.group(6))
    if drop > 1.0 + 1e-9 or abs(100 * (fp32 - top1) - drop) > 0.011:
        raise Failure(f"the chosen plan drops {drop} points (limit 1.0; fp32 {fp32}, plan {top1})")
    if ms >= fp32_ms:
        raise Failure(f"the chosen plan ({ms} ms) is not faster than fp32 ({fp32_ms} ms)")
    with open(os.path.join(out_dir, "plan.json")) as f:
        plan = json.load(f)
    if len(plan["layers"]) != 4 or any("bits" not in l or "structure" not in l for l in plan["layers"]):
        raise Failure("plan.json lacks a layer's bits or structure")
    if abs(plan["planner"]["top1"] - top1) > 1e-4:
        raise Failure("plan.json's top-1 differs from the printed one")
    # The plan through kiln eval: the same samples give the same top-1.
    ev = run_capture([env.kiln, "eval", FMNIST_MODEL, "--data", images_path, "--labels", labels_path, "--limit", "1000",
                      "--plan", os.path.join(out_dir, "plan.json")], "kiln eval --plan", env.timeout)
    e = EVAL_TOP1.search(ev)
    if not e or abs(float(e.group(1)) - top1) > 1e-4:
        raise Failure(f"kiln eval --plan gives top-1 {e.group(1) if e else '?'}, the planner measured {top1}")
    # Another budget on the same trials: resumed, no trial rebuilt.
    with open(os.path.join(out_dir, "report.json")) as f:
        fp32_bytes = json.load(f)["fp32"]["bytes"]
    out2 = run_capture(common + ["--budget", f"size={int(fp32_bytes / 3)}", "--max-drop", "2.0"], "kiln plan (size)",
                       env.timeout)
    trials = PLAN_TRIAL.findall(out2)
    if "resuming from" not in out2 or not trials or any("(cached)" not in t for t in trials):
        raise Failure("the second search did not reuse the cached trials")
    m2 = PLAN_CHOSEN.search(out2)
    with open(os.path.join(out_dir, "report.json")) as f:
        report = json.load(f)
    if not m2 or report["chosen"]["bytes"] > fp32_bytes / 3:
        raise Failure("the size-budgeted plan is missing or over its budget")
    check_report_renders(os.path.join(out_dir, "report.html"), d)


def case_plan_fmnist_accel(env, case):
    """kiln plan --target accel on the CNN (every layer int8: dense, 2:4 or SmartDeal,
    priced by kiln sim on the Verilated RTL), the fewest weight bytes moved within a
    1-point drop: the chosen plan moves fewer bytes than int8 dense, and kiln sim of
    plan.json on the same input gives the cycles and bytes the planner reported, bit for
    bit against the reference model."""
    images_path, labels_path = fmnist_test_set(env)
    d = env.case_dir(case)
    out_dir = os.path.join(d, "plan")
    run_capture([env.kiln, "plan", FMNIST_MODEL, "--target", "accel", "--calib", FMNIST_TRAIN_IMAGES,
                 "--calib-limit", "200", "--eval", images_path, "--labels", labels_path, "--eval-limit", "500",
                 "--sens-samples", "32", "--budget", "size", "--max-drop", "1.0", "-o", out_dir],
                "kiln plan --target accel", env.timeout)
    with open(os.path.join(out_dir, "report.json")) as f:
        report = json.load(f)
    chosen, int8, fp32 = report["chosen"], report["int8"], report["fp32"]
    if not chosen:
        raise Failure("no plan chosen")
    if 100 * (fp32["top1"] - chosen["top1"]) > 1.0 + 1e-9:
        raise Failure(f"the chosen plan's top-1 {chosen['top1']} is more than 1 point below fp32's {fp32['top1']}")
    if chosen["bytes"] >= int8["bytes"]:
        raise Failure(f"the chosen plan moves {chosen['bytes']} weight bytes, int8 dense {int8['bytes']}")
    sim = run_capture([env.kiln, "sim", FMNIST_MODEL, "--plan", os.path.join(out_dir, "plan.json"),
                       "--gram", os.path.join(out_dir, "cache", "gram", "gram.bin"),
                       "--input", "input=" + os.path.join(out_dir, "cache", "samples", "chunk0.npy")],
                      "kiln sim --plan", env.timeout)
    m = SIM_TOTAL.search(sim)  # cycles, gemm cycles, PE util, read, weight, write bytes
    if not m or "bit-exact vs the reference model: 1 of 1" not in sim:
        raise Failure("kiln sim of the plan printed no totals or was not bit-exact")
    if int(m.group(1)) != round(chosen["cycles"]) or int(m.group(5)) != round(chosen["bytes"]):
        raise Failure(f"kiln sim: {m.group(1)} cycles, {m.group(5)} weight bytes; the planner reported "
                      f"{chosen['cycles']} and {chosen['bytes']}")
    log(f"accelerator plan: {chosen['plan']}: top-1 {chosen['top1']}, {m.group(1)} cycles, {m.group(5)} weight "
        f"bytes (int8 dense {int8['cycles']:.0f}, {int8['bytes']:.0f})")


def case_bert_tiny(env, case):
    model = bert_tiny_model(env)
    d = os.path.join(env.work, case + "_inputs")
    os.makedirs(d, exist_ok=True)
    vocab = bert_vocab()
    log(f"input seed {env.seed}, vocab {vocab}")
    ids = np.random.default_rng(env.seed).integers(0, vocab, size=(1, 16), dtype=np.int64)
    path = os.path.join(d, "input_ids.npy")
    np.save(path, ids)
    compare_once(env, case, model, {"input_ids": path})


BERT_ENCODER_SEQ = 128
BERT_ENCODER_PAD = 16  # the last 16 positions are padding (attention_mask 0)


def case_bert_encoder(env, case, target=None):
    model = bert_encoder_model(env)
    d = os.path.join(env.work, case + "_inputs")
    os.makedirs(d, exist_ok=True)
    vocab = bert_vocab("export_bert_encoder.py")
    log(f"input seed {env.seed}, vocab {vocab}, seq {BERT_ENCODER_SEQ}, "
        f"last {BERT_ENCODER_PAD} positions padded")
    ids = np.random.default_rng(env.seed).integers(
        0, vocab, size=(1, BERT_ENCODER_SEQ), dtype=np.int64)
    mask = np.ones((1, BERT_ENCODER_SEQ), dtype=np.int64)
    mask[:, BERT_ENCODER_SEQ - BERT_ENCODER_PAD:] = 0
    inputs = {"input_ids": os.path.join(d, "input_ids.npy"),
              "attention_mask": os.path.join(d, "attention_mask.npy")}
    np.save(inputs["input_ids"], ids)
    np.save(inputs["attention_mask"], mask)
    # Every output element is compared, padded positions included: both
    # engines compute them (padded queries still attend to the unpadded keys).
    compare_once(env, case, model, inputs, target)


# ---- silero_vad: a stateful model streamed over a real recording ----------

SILERO_FETCH = os.path.join(MODELS_DIR, "fetch_silero_vad.py")
SILERO_MODEL = os.path.join(MODELS_DIR, "generated", "silero_vad_v5.onnx")
VAD_SENTENCE = "Kiln compiles this voice activity detector ahead of time."
VAD_RATE = 16000      # the model's sample rate (the `sr` input, frozen at compile time)
VAD_CHUNK = 512       # samples per chunk at 16 kHz, as @ricky0123/vad-web feeds v5
VAD_CONTEXT = 64      # the previous chunk's last samples, prepended to each chunk
VAD_PAD_SECONDS = 1.0  # silence before and after the sentence
VAD_NOISE = 1e-3      # standard deviation of the seeded noise on the whole signal


def silero_vad_model(env):
    """The pinned model in models/generated/ (fetched by scripts/setup.sh, or here
    when absent); the fetch script checks its sha256 either way."""
    run_cmd([env.python, SILERO_FETCH, "-o", SILERO_MODEL, "--quiet"],
            "fetching Silero VAD v5 (models/fetch_silero_vad.py)", env.timeout)
    return SILERO_MODEL


def resample(x, rate_in, rate_out):
    """Band-limited resampling through the FFT (what scipy.signal.resample does)."""
    n_out = int(round(len(x) * rate_out / rate_in))
    spec = np.fft.rfft(x.astype(np.float64))
    keep = min(len(spec), n_out // 2 + 1)
    return np.fft.irfft(spec[:keep], n_out) * (n_out / len(x))


def vad_recording(env, d):
    """espeak-ng's VAD_SENTENCE at 16 kHz, padded with VAD_PAD_SECONDS of silence
    at both ends, plus seeded noise; returns (float32 samples, speech start, end)."""
    wav = os.path.join(d, "speech.wav")
    try:
        run_cmd(["espeak-ng", "-w", wav, VAD_SENTENCE], "espeak-ng", env.timeout)
    except Failure as e:
        raise Failure(f"{e} (scripts/setup.sh installs espeak-ng)")
    with wave.open(wav) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise Failure(f"{wav}: expected 16-bit mono, got {w.getnchannels()} channels "
                          f"of {8 * w.getsampwidth()} bits")
        rate = w.getframerate()
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768.0
    speech = resample(speech, rate, VAD_RATE)
    pad = np.zeros(int(VAD_PAD_SECONDS * VAD_RATE))
    audio = np.concatenate([pad, speech, pad])
    audio += VAD_NOISE * np.random.default_rng(env.seed).standard_normal(audio.shape)
    log(f"espeak-ng: {len(speech) / VAD_RATE:.2f} s of speech ({rate} Hz resampled to "
        f"{VAD_RATE} Hz), {VAD_PAD_SECONDS:g} s of silence before and after, noise "
        f"sigma {VAD_NOISE:g} (seed {env.seed})")
    return audio.astype(np.float32), len(pad), len(pad) + len(speech)


def vad_chunks(audio):
    """[T, 1, VAD_CONTEXT + VAD_CHUNK]: each 512-sample chunk (the last one padded
    with zeros) after the previous chunk's last 64 samples (zeros for the first),
    which is how vad-web's Silero.process builds the model's `input`."""
    steps = -(-len(audio) // VAD_CHUNK)
    frames = np.zeros((steps, VAD_CHUNK), np.float32)
    frames.reshape(-1)[:len(audio)] = audio
    context = np.zeros((steps, VAD_CONTEXT), np.float32)
    context[1:] = frames[:-1, -VAD_CONTEXT:]
    return np.concatenate([context, frames], axis=1)[:, None, :]


def kiln_stream(env, model, chunks, d):
    """Compiles once with `kiln run --keep` (which also runs chunk 0), then runs the
    kept runner once per further chunk, feeding each chunk's stateN back as state.
    Returns the probabilities [T] and the states [T, 2, 1, 128]."""
    if not os.path.isfile(env.kiln) or not os.access(env.kiln, os.X_OK):
        raise Failure(f"kiln not found or not executable: {env.kiln}")
    keep, out = os.path.join(d, "kiln_build"), os.path.join(d, "kiln_out")
    chunk_path, state_path = os.path.join(d, "chunk.npy"), os.path.join(d, "state.npy")
    sr_path = os.path.join(d, "sr.npy")
    np.save(sr_path, np.array(VAD_RATE, np.int64))
    np.save(chunk_path, chunks[0])
    np.save(state_path, np.zeros((2, 1, 128), np.float32))
    t_compile = run_cmd([env.kiln, "run", model, "--input", f"input={chunk_path}",
                         "--input", f"state={state_path}", "--freeze", f"sr={sr_path}",
                         "--keep", keep, "--output", out], "kiln run", env.timeout)
    runner = [os.path.join(keep, "runner"), "--weights", os.path.join(keep, "model.kw"),
              "--input", f"input={chunk_path}", "--input", f"state={state_path}", "--output", out]
    log(f"$ {' '.join(runner)}   (once per chunk, chunks 1..{len(chunks) - 1})")
    probs, states = [], []
    t0 = time.time()
    for t in range(len(chunks)):
        if t > 0:
            np.save(chunk_path, chunks[t])
            np.save(state_path, states[-1])
            proc = subprocess.run(runner, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, timeout=env.timeout)
            if proc.returncode != 0:
                raise Failure(f"kiln runner failed at chunk {t} (exit {proc.returncode}): "
                              f"{proc.stderr.strip()}")
        prob = load_output(out, "output", "kiln")
        state = load_output(out, "stateN", "kiln")
        if prob.shape != (1, 1) or state.shape != (2, 1, 128):
            raise Failure(f"kiln chunk {t}: output {prob.shape}, stateN {state.shape}; "
                          "expected (1, 1) and (2, 1, 128)")
        probs.append(float(prob[0, 0]))
        states.append(state)
    log(f"kiln: compile + chunk 0 {t_compile:.2f} s, {len(chunks) - 1} more runner calls "
        f"{time.time() - t0:.2f} s")
    return np.array(probs, np.float32), np.stack(states)


def case_silero_vad(env, case):
    tol = load_tolerances(case)
    model = silero_vad_model(env)
    d = env.case_dir(case)
    audio, speech_begin, speech_end = vad_recording(env, d)
    chunks = vad_chunks(audio)
    chunks_path = os.path.join(d, "chunks.npy")
    np.save(chunks_path, chunks)

    # The oracle starts from a zero state; sr is a scalar int64, as the model declares it.
    check_ort_installed()
    ort_inputs = {"state": os.path.join(d, "state0.npy"), "sr": os.path.join(d, "sr_ort.npy")}
    np.save(ort_inputs["state"], np.zeros((2, 1, 128), np.float32))
    np.save(ort_inputs["sr"], np.array(VAD_RATE, np.int64))
    ort_dir = os.path.join(d, "ort")
    t_ort = run_cmd([env.node, ORT_STREAM, model, ort_dir, "--stream", f"input={chunks_path}",
                     "--carry", "stateN=state", "--threads", str(env.ort_threads)] +
                    input_args(ort_inputs), "onnxruntime (ort_stream.js)", env.timeout)
    ort_probs = load_output(ort_dir, "output", "onnxruntime").reshape(-1)
    ort_states = load_output(ort_dir, "stateN", "onnxruntime")
    log(f"onnxruntime: {t_ort:.2f} s for the stream")
    kiln_probs, kiln_states = kiln_stream(env, model, chunks, d)
    if ort_probs.shape != kiln_probs.shape:
        raise Failure(f"onnxruntime gave {ort_probs.shape[0]} probabilities, kiln {kiln_probs.shape[0]}")

    thr = float(tol["speech_threshold"])
    diff = np.abs(kiln_probs.astype(np.float64) - ort_probs)
    # Every chunk's state, under the default rtol/atol rule.
    states_ok, states_msg = compare_array("stateN (all chunks)", kiln_states,
                                          ort_states.reshape(kiln_states.shape), tol)
    log(("PASS " if states_ok else "FAIL ") + states_msg)
    kiln_speech, ort_speech = kiln_probs >= thr, ort_probs >= thr
    steps = len(chunks)
    first = np.arange(steps) * VAD_CHUNK           # first sample of each chunk (without context)
    in_lead = first + VAD_CHUNK <= speech_begin    # chunks wholly inside the leading silence
    in_speech = (first >= speech_begin) & (first + VAD_CHUNK <= speech_end)
    log(f"{steps} chunks of {VAD_CHUNK} samples (+{VAD_CONTEXT} of context), "
        f"{int(in_lead.sum())} wholly in the leading silence, {int(in_speech.sum())} wholly in the speech")
    log(f"speech chunks (p >= {thr:g}): kiln {int(kiln_speech.sum())}, onnxruntime {int(ort_speech.sum())}")
    log("onnxruntime decisions: " + "".join("S" if v else "." for v in ort_speech))
    log(f"max |kiln - onnxruntime| probability {float(diff.max()):.3e} (limit {tol['max_abs_diff']:g}) "
        f"at chunk {int(diff.argmax())}; the closest onnxruntime probability to the threshold "
        f"is {float(np.min(np.abs(ort_probs - thr))):.3e} away")

    problems = []
    if not np.all(np.isfinite(kiln_probs)):
        problems.append("kiln's probabilities are not all finite")
    elif float(diff.max()) > float(tol["max_abs_diff"]):
        problems.append(f"probabilities differ by up to {float(diff.max()):.3e} "
                        f"(chunk {int(diff.argmax())}: kiln {kiln_probs[diff.argmax()]:.7g}, "
                        f"onnxruntime {ort_probs[diff.argmax()]:.7g})")
    if not states_ok:
        problems.append("the states differ")
    flips = np.flatnonzero(kiln_speech != ort_speech)
    if flips.size:
        problems.append(f"speech/silence decisions differ at chunks {flips.tolist()[:20]}")
    # The recording must exercise both decisions, or the comparison proves little.
    if ort_speech[in_lead].any():
        problems.append("onnxruntime hears speech in the leading silence: "
                        f"chunks {np.flatnonzero(ort_speech & in_lead).tolist()}")
    if not ort_speech[in_speech].any():
        problems.append("onnxruntime hears no speech in the sentence")
    if ort_speech[-1]:
        problems.append("onnxruntime still hears speech in the last chunk (trailing silence)")
    if problems:
        raise Failure("; ".join(problems))


SIM_TOTAL = re.compile(r"^total\s+(\d+)\s+(\d+)\s+([0-9.]+)%\s+(\d+)\s+(\d+)\s+(\d+)$", re.M)
SIM_EXACT = re.compile(r"^bit-exact vs the reference model: (\d+) of (\d+) inferences$", re.M)
SIM_SAMPLES = 500


def run_kiln_sim(env, extra, log_name):
    """`kiln sim` of the Fashion-MNIST CNN on the first SIM_SAMPLES test images (plus
    `extra`); returns (top-1 right, n, total cycles, GEMM cycles, weight bytes) after
    checking that every inference was bit-exact with the reference model."""
    images_path, labels_path = fmnist_test_set(env)
    cmd = [env.kiln, "sim", FMNIST_MODEL, "--data", images_path, "--labels", labels_path,
           "--limit", str(SIM_SAMPLES)] + list(extra)
    log("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, timeout=env.timeout, stdout=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        raise Failure(f"kiln sim ({log_name}): timed out after {env.timeout} s")
    log(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise Failure(f"kiln sim ({log_name}) failed with exit status {proc.returncode}")
    mt, me, mk = SIM_TOTAL.search(proc.stdout), SIM_EXACT.search(proc.stdout), EVAL_KILN.search(proc.stdout)
    if not mt or not me or not mk:
        raise Failure(f"kiln sim ({log_name}): cannot find the totals, the bit-exact line and top-1")
    if me.group(1) != me.group(2) or int(me.group(2)) != SIM_SAMPLES:
        raise Failure(f"kiln sim ({log_name}): only {me.group(1)} of {me.group(2)} inferences bit-exact")
    return int(mk.group(2)), int(mk.group(3)), int(mt.group(1)), int(mt.group(2)), int(mt.group(5))


def case_fmnist_accel(env, case):
    """The int8 Fashion-MNIST CNN on the Verilated accelerator (kiln sim), on the first
    500 test images: every inference bit-exact with the reference model, and the same
    top-1 as Kiln's CPU int8 path with the same plan (calibrated on 500 training
    images). Then 2:4 (N:M mode): bit-exact too; its cycles and weight bytes against
    dense must stay within the recorded ratios (docs/ACCELERATOR.md has the figures)."""
    tol = load_tolerances(case)
    images_path, labels_path = fmnist_test_set(env)
    if not os.path.isfile(FMNIST_TRAIN_IMAGES):
        raise Failure(f"calibration images not found: {FMNIST_TRAIN_IMAGES} (Debian dataset-fashion-mnist)")
    d = env.case_dir(case)

    def cpu_eval(quantize):
        """kiln eval on the CPU (calibrated on 500 training images): its top-1 match and
        the plan it wrote, for kiln sim to run the same quantisation."""
        keep = os.path.join(d, "cpu-" + quantize)
        out = run_kiln_eval(env, FMNIST_MODEL, images_path, labels_path,
                            ["--quantize", quantize, "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500",
                             "--limit", str(SIM_SAMPLES)], keep)
        m = EVAL_KILN.search(out)
        if not m:
            raise Failure(f"cannot find kiln eval's {quantize} top-1")
        return m, os.path.join(keep, "model.plan.json")

    mc, plan = cpu_eval("int8")
    right, n, cycles, gemm, wbytes = run_kiln_sim(env, ["--plan", plan], "dense")
    log(f"accelerator int8 top-1 {right}/{n}, CPU int8 {mc.group(2)}/{mc.group(3)}; {cycles} cycles per image")
    if cycles > int(tol["max_dense_cycles"]):
        raise Failure(f"dense int8 takes {cycles} cycles per image (limit {tol['max_dense_cycles']})")
    if n != int(mc.group(3)) or abs(right - int(mc.group(2))) > int(tol["max_top1_diff_images"]):
        raise Failure(f"accelerator top-1 {right}/{n} differs from the CPU int8 path's {mc.group(2)}/{mc.group(3)}")
    right24, _, cycles24, gemm24, wbytes24 = run_kiln_sim(
        env, ["--sparsify", "2:4", "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"], "2:4")
    log(f"2:4: top-1 {right24}/{n}; cycles {cycles24 / cycles:.3f}x dense (GEMM cycles {gemm24 / gemm:.3f}x), "
        f"weight bytes {wbytes24 / wbytes:.3f}x")
    if cycles24 / cycles > float(tol["max_nm_cycle_ratio"]):
        raise Failure(f"2:4 takes {cycles24 / cycles:.3f}x the dense cycles (limit {tol['max_nm_cycle_ratio']})")
    if gemm24 / gemm > float(tol["max_nm_gemm_cycle_ratio"]):
        raise Failure(f"2:4 GEMM cycles {gemm24 / gemm:.3f}x dense (limit {tol['max_nm_gemm_cycle_ratio']})")
    # int4 weights (GEMM W4 mode): bit-exact, the CPU int4 path's top-1 (same calibration),
    # half the weight bytes.
    mc4, plan4 = cpu_eval("int4")
    right4, _, cycles4, _, wbytes4 = run_kiln_sim(env, ["--plan", plan4], "int4")
    log(f"int4: top-1 {right4}/{n} (CPU int4 {mc4.group(2)}/{mc4.group(3)}); weight bytes {wbytes4 / wbytes:.3f}x "
        f"dense int8, cycles {cycles4 / cycles:.3f}x")
    # The accelerator requantises in fixed point straight to u8; the CPU path's epilogue
    # is a float multiply-add and the next layer quantises again: rounding can differ.
    if abs(right4 - int(mc4.group(2))) > int(tol["max_int4_top1_diff_images"]):
        raise Failure(f"accelerator int4 top-1 {right4}/{n} differs from the CPU int4 path's {mc4.group(2)}")
    if wbytes4 / wbytes > float(tol["max_int4_weight_byte_ratio"]):
        raise Failure(f"int4 moves {wbytes4 / wbytes:.3f}x the int8 weight bytes "
                      f"(limit {tol['max_int4_weight_byte_ratio']})")
    # SmartDeal (docs/SMARTDEAL.md's per-layer setting): the weights travel compressed
    # and the REBUILD unit makes the int8 weights.
    right_sd, _, cycles_sd, _, wbytes_sd = run_kiln_sim(
        env, ["--decompose", "smartdeal", "--decompose-layers", FMNIST_SMARTDEAL_LAYERS,
              "--calib", FMNIST_TRAIN_IMAGES, "--calib-limit", "500"], "SmartDeal")
    log(f"SmartDeal: top-1 {right_sd}/{n}; weight bytes {wbytes_sd / wbytes:.3f}x dense int8, "
        f"cycles {cycles_sd / cycles:.3f}x")
    if wbytes_sd / wbytes > float(tol["max_smartdeal_weight_byte_ratio"]):
        raise Failure(f"SmartDeal moves {wbytes_sd / wbytes:.3f}x the dense int8 weight bytes "
                      f"(limit {tol['max_smartdeal_weight_byte_ratio']})")
    if right - right_sd > int(tol["max_smartdeal_drop_images"]):
        raise Failure(f"SmartDeal top-1 {right_sd}/{n} vs dense {right}/{n}")


def conv_layer_model(path, cin, cout, k, hw, seed, head_bias=True):
    """A k x k convolution (cin -> cout, `hw` x `hw` pixels, padding k // 2) + ReLU, then a
    1x1 convolution to 16 channels (the accelerator's model output is a raw GEMM), with
    seeded random weights; writes the model, one input and 8 calibration samples."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
    b = (0.1 * rng.standard_normal(cout)).astype(np.float32)
    hw_ = (rng.standard_normal((16, cout, 1, 1)) / np.sqrt(cout)).astype(np.float32)
    hb = (0.1 * rng.standard_normal(16)).astype(np.float32) if head_bias else np.zeros(16, np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[k // 2] * 4, kernel_shape=[k, k]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "hw", "hb"], ["y"], kernel_shape=[1, 1])]
    g = helper.make_graph(nodes, "conv_layer",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, hw, hw])],
                          [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (hw_, "hw"), (hb, "hb"))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    onnx.save(m, path)
    np.save(path[:-5] + "_in.npy", rng.random((1, cin, hw, hw), dtype=np.float32))
    np.save(path[:-5] + "_calib.npy", rng.random((8, cin, hw, hw), dtype=np.float32))


SIM_LAYER = re.compile(r"^(\S+)\s+gemm\S*(?: \S+)?\s+(\d+)\s+(\d+)\s+([0-9.]+)%", re.M)


def case_accel_util(env, case):
    """Convolutions whose shapes fill the accelerator's 16 x 16 PE array (16 x 16 pixels,
    64+ channels), on the Verilated RTL: bit-exact with the reference model, and the
    big layer's PE utilisation (useful MACs / (PEs x cycles), DMA overlapped with the
    GEMMs) at least the recorded minimum. The shapes: 3x3 64 -> 128 (weights streamed:
    they do not fit WBUF), 3x3 64 -> 64 (weights resident; the output reuses its input's
    host buffer) and 1x1 256 -> 256 with a zero-bias head."""
    tol = load_tolerances(case)
    d = env.case_dir(case)
    shapes = [("c64_128", 64, 128, 3, True), ("c64_64", 64, 64, 3, True), ("c256_1x1", 256, 256, 1, False)]
    for i, (name, cin, cout, k, head_bias) in enumerate(shapes):
        model = os.path.join(d, name + ".onnx")
        conv_layer_model(model, cin, cout, k, 16, 100 + i, head_bias)
        out = run_capture([env.kiln, "sim", model, "--input", "x=" + model[:-5] + "_in.npy",
                           "--calib", model[:-5] + "_calib.npy", "-o", os.path.join(d, name)],
                          f"kiln sim {name}", env.timeout)
        me = SIM_EXACT.search(out)
        if not me or me.group(1) != "1" or me.group(2) != "1":
            raise Failure(f"{name}: kiln sim was not bit-exact with the reference model")
        layers = SIM_LAYER.findall(out)
        if not layers:
            raise Failure(f"{name}: cannot find the per-layer table")
        lname, cycles, gemm, util = layers[0]
        log(f"{name}: {lname} {cycles} cycles, {gemm} in GEMM, PE utilisation {util}%")
        if float(util) / 100 < float(tol["min_pe_util"]):
            raise Failure(f"{name}: PE utilisation {util}% below {float(tol['min_pe_util']) * 100:.0f}%")


CASES = {
    "mobilenet_v2": lambda env: case_torchvision(env, "mobilenet_v2"),
    "resnet18": lambda env: case_torchvision(env, "resnet18"),
    "fmnist": lambda env: case_fmnist(env, "fmnist"),
    "fmnist_accuracy": lambda env: case_fmnist_accuracy(env, "fmnist_accuracy"),
    "fmnist_aarch64": lambda env: case_fmnist(env, "fmnist_aarch64", target="aarch64"),
    "fmnist_vit": lambda env: case_fmnist(env, "fmnist_vit", model=FMNIST_VIT_MODEL),
    "fmnist_vit_accuracy": lambda env: case_fmnist_eval(env, "fmnist_vit_accuracy", FMNIST_VIT_MODEL),
    "fmnist_int8": lambda env: case_fmnist_int8(env, "fmnist_int8", FMNIST_MODEL, True),
    "fmnist_vit_int8": lambda env: case_fmnist_int8(env, "fmnist_vit_int8", FMNIST_VIT_MODEL, False),
    "fmnist_mixed": lambda env: case_fmnist_mixed(env, "fmnist_mixed"),
    "plan_fmnist": lambda env: case_plan_fmnist(env, "plan_fmnist"),
    "plan_fmnist_accel": lambda env: case_plan_fmnist_accel(env, "plan_fmnist_accel"),
    "fmnist_bf16": lambda env: case_fmnist_bf16(env, "fmnist_bf16"),
    "fmnist_qdq": lambda env: case_fmnist_qdq(env, "fmnist_qdq"),
    "fmnist_int8_aarch64": lambda env: case_int8_aarch64(env, "fmnist_int8_aarch64"),
    "fmnist_nm": lambda env: case_fmnist_nm(env, "fmnist_nm", FMNIST_MODEL, [], against_magnitude=True),
    "fmnist_nm_int8": lambda env: case_fmnist_nm(env, "fmnist_nm_int8", FMNIST_MODEL, ["--quantize", "int8"]),
    "fmnist_vit_nm": lambda env: case_fmnist_nm(env, "fmnist_vit_nm", FMNIST_VIT_MODEL,
                                                ["--sparsify-layers", "/patch/Conv=dense,/head/Gemm=dense"]),
    "fmnist_smartdeal": lambda env: case_fmnist_smartdeal(env, "fmnist_smartdeal", FMNIST_MODEL,
                                                          FMNIST_SMARTDEAL_LAYERS, 3),
    "fmnist_vit_butterfly": lambda env: case_fmnist_vit_butterfly(env, "fmnist_vit_butterfly"),
    "fmnist_accel": lambda env: case_fmnist_accel(env, "fmnist_accel"),
    "accel_util": lambda env: case_accel_util(env, "accel_util"),
    "fmnist_gru": lambda env: case_fmnist(env, "fmnist_gru", model=FMNIST_GRU_MODEL),
    "fmnist_gru_accuracy": lambda env: case_fmnist_eval(env, "fmnist_gru_accuracy", FMNIST_GRU_MODEL),
    "bert_tiny": lambda env: case_bert_tiny(env, "bert_tiny"),
    "bert_encoder": lambda env: case_bert_encoder(env, "bert_encoder"),
    "silero_vad": lambda env: case_silero_vad(env, "silero_vad"),
    # The Vulkan target (SPIR-V kernels through the runtime's Vulkan HAL; lavapipe in CI).
    "vulkan_fmnist": lambda env: case_fmnist(env, "vulkan_fmnist", target="vulkan"),
    "vulkan_fmnist_tiled": lambda env: case_fmnist(env, "vulkan_fmnist_tiled", target="vulkan", extra=["--gpu-tile"]),
    "vulkan_fmnist_accuracy": lambda env: case_fmnist_eval(env, "vulkan_fmnist_accuracy", FMNIST_MODEL,
                                                           ["--target", "vulkan"]),
    "vulkan_mobilenet_v2": lambda env: case_torchvision(env, "vulkan_mobilenet_v2", target="vulkan"),
    "vulkan_mobilenet_v2_tiled": lambda env: case_torchvision(env, "vulkan_mobilenet_v2_tiled", target="vulkan",
                                                              extra=["--gpu-tile"]),
    "vulkan_bert_encoder": lambda env: case_bert_encoder(env, "vulkan_bert_encoder", target="vulkan"),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="cases: " + ", ".join(CASES) + ", all")
    ap.add_argument("--kiln", required=True, help="path to the kiln executable")
    ap.add_argument("--work", required=True, help="scratch directory (created if absent)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help=f"seed of the random inputs (default {DEFAULT_SEED})")
    ap.add_argument("--node", default=os.environ.get("KILN_NODE", "node"),
                    help="node executable for the onnxruntime oracle")
    ap.add_argument("--python", default=sys.executable,
                    help="python3 with torch/torchvision for the model exports")
    ap.add_argument("--ort-threads", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=1800,
                    help="seconds allowed to each subprocess (default 1800)")
    ap.add_argument("case", choices=list(CASES) + ["all"])
    args = ap.parse_args(argv)

    env = Env(args)
    os.makedirs(env.work, exist_ok=True)
    cases = list(CASES) if args.case == "all" else [args.case]
    failed = []
    for case in cases:
        log(f"=== {case}")
        t0 = time.time()
        try:
            CASES[case](env)
        except Failure as e:
            log(f"FAILED {case}: {e} ({time.time() - t0:.1f} s)")
            failed.append(case)
        else:
            log(f"PASSED {case} ({time.time() - t0:.1f} s)")
    if len(cases) > 1:
        log(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
