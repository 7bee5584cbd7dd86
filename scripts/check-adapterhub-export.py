#!/usr/bin/env python3
"""Checks an AdapterHub adapter folder (what `peft-lab export` writes) against the names and shapes
the Python `adapters` library would create for the model type (bert, roberta, xlm-roberta, electra,
distilbert, modernbert) and the adapter_config.json the folder holds, without
the library itself (it cannot be installed here). Exit 0 when every tensor matches exactly, 1 with a
readable diff when not, 2 on a usage error or a config this checker does not model.

    check-adapterhub-export.py <adapter dir> [--layers N] [--intermediate-size I]

--layers is the base model's num_hidden_layers (inferred from the tensor names when omitted, which
cannot catch a missing last layer); --intermediate-size is needed for LoRA on intermediate/output.

The library's rules encoded below were read from adapter-hub/adapters (main branch):
  src/adapters/methods/modeling.py   Adapter: adapter_down = Sequential([LayerNorm if ln_before,]
                                     Linear(d, m), act); adapter_up = Linear(m, d); adapter_norm_after
                                     if ln_after; gate = Linear(d, 1) if use_gating; scaling
                                     parameter [1] ("learned") or [d] ("channel"); init_weights in
                                     bert, mam_adapter, houlsby.
  src/adapters/methods/bottleneck.py down_sample = int(hidden_size // reduction_factor), at least 1;
                                     reduction_factor may map str(layer) / "default" to values.
  src/adapters/models/bert/mixin_bert.py
                                     attention.output holds "mh_adapter" adapters, output holds
                                     "output_adapter" ones; LoRA wraps attention.self.{query,key,
                                     value} (attn_key q/k/v), intermediate.dense, output.dense.
  src/adapters/methods/lora.py       lora_A [r, in], lora_B [out, r], under `.loras.{name}.`.
  src/adapters/configuration/model_adapters_config.py
                                     match(): leave_out skips a layer, the location flag must be set.
  src/adapters/heads/base.py         PredictionHead.build: per layer a Dropout, then Linear(d, d)
                                     (+ activation) except the last, which is Linear(d, num_labels).
  src/adapters/loading.py, utils.py  adapter.safetensors / model_head.safetensors, and
                                     adapter_config.json / head_config.json.
"""
import argparse
import json
import math
import os
import re
import struct
import sys

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
HEAD_CONFIG = "head_config.json"
HEAD_WEIGHTS = "model_head.safetensors"
FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}
ACTIVATIONS = {"gelu", "relu", "swish", "silu", "tanh", "leakyrelu", "gelu_new", "sigmoid", "linear"}


class Unsupported(Exception):
    """A config feature this checker does not model (exit 2, not a mismatch)."""


# ---- reading -------------------------------------------------------------------------------------


def read_safetensors(path):
    """{name: (dtype, shape, bytes)}; through the `safetensors` module when present, else by hand:
    an 8-byte little-endian header length, the JSON header, then the data section."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    if length > len(raw) - 8:
        raise ValueError(f"{path}: header length {length} exceeds the file size {len(raw)}")
    header = json.loads(raw[8 : 8 + length].decode("utf-8"))
    data = raw[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        expected = math.prod(entry["shape"]) * FLOAT_DTYPES.get(entry["dtype"], 0)
        if end - begin != expected or end > len(data):
            raise ValueError(f"{path}: {name}: data_offsets {begin}..{end} do not hold a {entry['dtype']} {entry['shape']} tensor")
        tensors[name] = (entry["dtype"], list(entry["shape"]), data[begin:end])
    try:
        from safetensors import safe_open  # noqa: PLC0415 - optional, the hand parser above is the fallback

        with safe_open(path, framework="np") as f:
            names = set(f.keys())
        if names != set(tensors):
            raise ValueError(f"{path}: the safetensors module and the header disagree on the tensor names")
    except ImportError:
        pass
    return tensors


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---- the library's naming rules ------------------------------------------------------------------


def bottleneck_size(hidden, reduction_factor, layer):
    """BottleneckLayer.add_adapter: a mapping gives str(layer) or "default"; int(d // rf), at least 1."""
    if isinstance(reduction_factor, dict):
        reduction_factor = reduction_factor.get(str(layer), reduction_factor.get("default"))
        if reduction_factor is None:
            raise Unsupported("reduction_factor mapping without a value for layer %d or a default" % layer)
    return max(1, int(hidden // reduction_factor))


# Where each model type keeps its adapters (read from the library's model mixins and its ModernBERT
# plugin interface, src/adapters/wrappers/interfaces.py with methods/bottleneck.py and lora.py):
#   layer: the layer module; sites: the modules holding mh_adapter / output_adapter adapters;
#   lora: the modules LoRA wraps for q, k, v, intermediate and output; merged: one LoRAMergedLinear for q, k, v
FAMILIES = {
    "bert": {"layer": "bert.encoder.layer.{}", "sites": ("attention.output", "output"),
             "lora": {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                      "intermediate": "intermediate.dense", "output": "output.dense"}, "merged": False},
    "distilbert": {"layer": "distilbert.transformer.layer.{}", "sites": ("attention_adapters", "output_adapters"),
                   "lora": {"q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin",
                            "intermediate": "ffn.lin1", "output": "ffn.lin2"}, "merged": False},
    "modernbert": {"layer": "model.layers.{}", "sites": ("attention_adapters", "output_adapters"),
                   "lora": {"q": "attn.Wqkv", "k": "attn.Wqkv", "v": "attn.Wqkv", "intermediate": "mlp.Wi", "output": "mlp.Wo"},
                   "merged": True, "glu": True},
}
FAMILIES["roberta"] = dict(FAMILIES["bert"], layer="roberta.encoder.layer.{}")
FAMILIES["xlm-roberta"] = FAMILIES["roberta"]
FAMILIES["electra"] = dict(FAMILIES["bert"], layer="electra.encoder.layer.{}")
MODEL_TYPE = "bert"


def family():
    if MODEL_TYPE not in FAMILIES:
        raise Unsupported(f"model_type {MODEL_TYPE!r} is not modelled")
    return FAMILIES[MODEL_TYPE]


def expected_bottleneck(config, name, hidden, layers):
    if config.get("phm_layer"):
        raise Unsupported("phm_layer (Compacter) is not modelled")
    expected = {}
    fam = family()
    locations = [("mh_adapter", fam["sites"][0]), ("output_adapter", fam["sites"][1])]
    for layer in range(layers):
        if layer in (config.get("leave_out") or []):
            continue
        m = bottleneck_size(hidden, config["reduction_factor"], layer)
        for flag, module in locations:
            if not config.get(flag):
                continue
            p = f"{fam['layer'].format(layer)}.{module}.adapters.{name}."
            linear = 0
            if config.get("ln_before"):
                expected[p + "adapter_down.0.weight"] = [hidden]
                expected[p + "adapter_down.0.bias"] = [hidden]
                expected[p + "adapter_norm_before.weight"] = [hidden]
                expected[p + "adapter_norm_before.bias"] = [hidden]
                linear = 1
            expected[p + f"adapter_down.{linear}.weight"] = [m, hidden]
            expected[p + f"adapter_down.{linear}.bias"] = [m]
            expected[p + "adapter_up.weight"] = [hidden, m]
            expected[p + "adapter_up.bias"] = [hidden]
            if config.get("ln_after"):
                expected[p + "adapter_norm_after.weight"] = [hidden]
                expected[p + "adapter_norm_after.bias"] = [hidden]
            if config.get("use_gating"):
                expected[p + "gate.weight"] = [1, hidden]
                expected[p + "gate.bias"] = [1]
            if config.get("scaling") == "learned":
                expected[p + "scaling"] = [1]
            elif config.get("scaling") == "channel":
                expected[p + "scaling"] = [hidden]
    return expected


def expected_lora(config, name, hidden, layers, intermediate):
    if config.get("composition_mode", "add") != "add" or config.get("use_gating") or config.get("vera_d") is not None:
        raise Unsupported("only additive, ungated LoRA is modelled")
    r = config["r"]
    fam = family()
    places = []
    if config.get("selfattn_lora", True):
        letters = [x for x in ("q", "k", "v") if x in config.get("attn_matrices", ["q", "v"])]
        if fam["merged"] and letters:
            # LoRAMergedLinear: lora_A [r * n, in], lora_B [out // 3 * n, r] for the n enabled matrices
            places.append((fam["lora"]["q"], hidden, hidden, len(letters)))
        else:
            places += [(fam["lora"][x], hidden, hidden, 1) for x in letters]
    if config.get("intermediate_lora") or config.get("output_lora"):
        if intermediate is None:
            raise Unsupported("LoRA on intermediate/output needs --intermediate-size")
        wide = 2 * intermediate if fam.get("glu") else intermediate  # ModernBERT's Wi holds GeGLU's input and gate
        if config.get("intermediate_lora"):
            places.append((fam["lora"]["intermediate"], hidden, wide, 1))
        if config.get("output_lora"):
            places.append((fam["lora"]["output"], intermediate, hidden, 1))
    expected = {}
    for layer in range(layers):
        if layer in (config.get("leave_out") or []):
            continue
        for module, fan_in, fan_out, n in places:
            p = f"{fam['layer'].format(layer)}.{module}.loras.{name}."
            expected[p + "lora_A"] = [r * n, fan_in]
            expected[p + "lora_B"] = [fan_out * n, r]
    return expected


def expected_head(config, name, hidden):
    """PredictionHead.build: module indices count the Dropout and activation modules too."""
    head = config["config"]
    if head.get("head_type") not in ("classification", "multilabel_classification"):
        raise Unsupported(f"head_type {head.get('head_type')!r} is not modelled")
    expected, index = {}, 0
    for layer in range(head["layers"]):
        index += 1  # Dropout
        last = layer == head["layers"] - 1
        out = head["num_labels"] if last else hidden
        expected[f"heads.{name}.{index}.weight"] = [out, hidden]
        if not last or head.get("bias", True):
            expected[f"heads.{name}.{index}.bias"] = [out]
        index += 1
        if not last and head.get("activation_function"):
            index += 1
    return expected


# ---- config checks -------------------------------------------------------------------------------


def config_problems(full, kind):
    """Values the library would reject or misread when loading (types matter: it tests isinstance)."""
    problems = []
    for key in ("config", "hidden_size", "model_class", "model_type", "name", "version"):
        if key not in full:
            problems.append(f"{kind}: missing top-level field {key!r}")
    if not str(full.get("version", "")).startswith("adapters."):
        problems.append(f"{kind}: version {full.get('version')!r} does not name the adapters library")
    config = full.get("config") or {}
    if kind == ADAPTER_CONFIG and config.get("architecture") in (None, "bottleneck"):
        scaling = config.get("scaling", 1.0)
        if not (isinstance(scaling, float) or scaling in ("learned", "channel")):
            problems.append(f"{kind}: config.scaling {scaling!r} must be a float (Adapter raises 'Unknown scaling type' otherwise)")
        if str(config.get("non_linearity", "")).lower() not in ACTIVATIONS:
            problems.append(f"{kind}: config.non_linearity {config.get('non_linearity')!r} is not an activation transformers knows")
        if config.get("init_weights", "bert") not in ("bert", "mam_adapter", "houlsby"):
            problems.append(f"{kind}: config.init_weights {config.get('init_weights')!r} is unknown to the library")
        for flag in ("mh_adapter", "output_adapter", "reduction_factor", "non_linearity"):
            if flag not in config:
                problems.append(f"{kind}: config.{flag} is required by BnConfig")
    if kind == HEAD_CONFIG and "dropout_prob" in config:
        problems.append(f"{kind}: config.dropout_prob breaks library versions whose heads do not take it")
    return problems


# ---- comparing -----------------------------------------------------------------------------------


def compare(expected, tensors, label):
    """Lines of a diff; empty when names and shapes match exactly."""
    lines = []
    for name in sorted(set(expected) - set(tensors)):
        lines.append(f"  missing in {label}: {name} {expected[name]}")
    for name in sorted(set(tensors) - set(expected)):
        lines.append(f"  unexpected in {label}: {name} {tensors[name][1]}")
    for name in sorted(set(expected) & set(tensors)):
        dtype, shape, _ = tensors[name]
        if shape != expected[name]:
            lines.append(f"  shape of {name} in {label}: file {shape}, library {expected[name]}")
        if dtype not in FLOAT_DTYPES:
            lines.append(f"  dtype of {name} in {label}: {dtype} is not a float type")
    return lines


def non_finite(tensors, label):
    """With torch at hand, also check every value is finite (a NaN adapter loads without complaint)."""
    try:
        import torch  # noqa: PLC0415 - optional
    except ImportError:
        return []
    lines = []
    for name, (dtype, shape, data) in sorted(tensors.items()):
        if dtype != "F32" or not data:
            continue
        t = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape)
        if not bool(torch.isfinite(t).all()):
            lines.append(f"  non-finite values in {label}: {name}")
    return lines


def infer_layers(names):
    pattern = re.escape(family()["layer"]).replace(re.escape("{}"), r"(\d+)") + r"\."
    layers = [int(m.group(1)) for n in names if (m := re.match(pattern, n))]
    return max(layers) + 1 if layers else 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--intermediate-size", type=int)
    args = parser.parse_args(argv)
    checked, diff = [], []
    try:
        if os.path.exists(os.path.join(args.folder, ADAPTER_CONFIG)):
            full = read_json(os.path.join(args.folder, ADAPTER_CONFIG))
            global MODEL_TYPE
            MODEL_TYPE = full.get("model_type") or "bert"
            tensors = read_safetensors(os.path.join(args.folder, ADAPTER_WEIGHTS))
            layers = args.layers if args.layers is not None else infer_layers(tensors)
            config, name, hidden = full["config"], full["name"], full["hidden_size"]
            if config.get("architecture") == "lora":
                expected = expected_lora(config, name, hidden, layers, args.intermediate_size)
            elif config.get("architecture") in (None, "bottleneck"):
                expected = expected_bottleneck(config, name, hidden, layers)
            else:
                raise Unsupported(f"architecture {config.get('architecture')!r} is not modelled")
            diff += config_problems(full, ADAPTER_CONFIG) + compare(expected, tensors, ADAPTER_WEIGHTS) + non_finite(tensors, ADAPTER_WEIGHTS)
            checked.append(f"{len(expected)} adapter tensors ({layers} layers{'' if args.layers is not None else ', inferred'})")
        if os.path.exists(os.path.join(args.folder, HEAD_CONFIG)):
            full = read_json(os.path.join(args.folder, HEAD_CONFIG))
            tensors = read_safetensors(os.path.join(args.folder, HEAD_WEIGHTS))
            expected = expected_head(full, full["name"], full["hidden_size"])
            diff += config_problems(full, HEAD_CONFIG) + compare(expected, tensors, HEAD_WEIGHTS) + non_finite(tensors, HEAD_WEIGHTS)
            checked.append(f"{len(expected)} head tensors")
    except Unsupported as err:
        print(f"cannot check {args.folder}: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as err:
        print(f"cannot check {args.folder}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if not checked:
        print(f"{args.folder}: neither {ADAPTER_CONFIG} nor {HEAD_CONFIG} found", file=sys.stderr)
        return 1
    if diff:
        print(f"{args.folder} does not match what the adapters library expects:", file=sys.stderr)
        print("\n".join(diff), file=sys.stderr)
        return 1
    print(f"ok: {args.folder}: {' and '.join(checked)} match the adapters library's names and shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
