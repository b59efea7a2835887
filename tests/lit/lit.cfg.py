# lit configuration for Kiln's FileCheck tests (run from ctest).
import os
import lit.formats

config.name = "Kiln"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".mlir", ".onnxtxt", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kiln_obj_root, "tests", "lit")
config.excludes = ["lit.cfg.py", "lit.site.cfg.py.in", "README.md", "Inputs"]

config.environment["PATH"] = os.pathsep.join(
    [config.kiln_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", os.environ["PATH"])])
config.substitutions.append(("%kiln_src", config.kiln_src_root))
config.substitutions.append(("%python", "/usr/bin/python3"))

# Fashion-MNIST from Debian's dataset-fashion-mnist (installed by scripts/setup.sh):
# the calibration data of the quantisation tests.
_fmnist_train = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
config.substitutions.append(("%fmnist_train", _fmnist_train))
if os.path.exists(_fmnist_train):
    config.available_features.add("fashion-mnist")

# `%limit_memory CMD` runs CMD with at most 4 GB of address space, to prove that a
# hostile model is refused without allocating what it claims. A sanitizer build
# reserves terabytes of shadow memory up front, so there it runs CMD unlimited.
if getattr(config, "kiln_sanitize", "OFF").upper() in ("ON", "1", "TRUE", "YES"):
    config.available_features.add("sanitize")
    config.substitutions.append(("%limit_memory", ""))
else:
    config.substitutions.append(("%limit_memory", "ulimit -v 4000000 &&"))

# The Vulkan runner was built (Vulkan headers present) and spirv-val is installed.
if os.path.exists(os.path.join(config.kiln_tools_dir, "kiln-vk-runner")):
    config.available_features.add("vulkan-runner")
import shutil as _shutil
if _shutil.which("spirv-val"):
    config.available_features.add("spirv-val")
