#!/usr/bin/env python3
"""Checks a Hugging Face PEFT LoRA folder (what `peft-lab export --format peft` writes) against the
tensor names and shapes PEFT itself would save for the same adapter_config.json on a BERT or RoBERTa
sequence classifier, without `peft` or `transformers` (they cannot be installed here): the
classification model's module tree is rebuilt in torch with transformers' attribute names, LoRA and
modules_to_save are injected by PEFT's rules, and the state dict is reduced as PEFT saves it. Exit 0
when every tensor matches exactly, 1 with a readable diff when not, 2 on a usage error or a config
this checker does not model.

    check-peft-export.py <adapter dir> --layers N --hidden D --intermediate-size I --labels L [--model-type bert|roberta]

PEFT's rules encoded below were read from huggingface/peft (main branch):
  src/peft/tuners/tuners_utils.py   check_target_module_exists: a list entry matches a module named
                                    exactly so or ending with "." + entry; a string is re.fullmatch'ed;
                                    layers_to_transform keeps modules whose "layer.<i>." index is listed.
  src/peft/tuners/lora/layer.py     Linear: lora_A = ModuleDict({adapter: Linear(in, r, bias=False)}),
                                    lora_B = ModuleDict({adapter: Linear(r, out, bias=False)}).
  src/peft/utils/other.py           ModulesToSaveWrapper(original_module, modules_to_save=ModuleDict({adapter:
                                    copy})) for each module whose name ends with a modules_to_save entry.
  src/peft/utils/save_and_load.py   get_peft_model_state_dict (bias "none"): keys with "lora_", plus the
                                    modules_to_save copies with "modules_to_save." removed; then ".default"
                                    removed from every key.
  src/peft/peft_model.py            PeftModel.base_model (LoraModel) .model (the transformers model):
                                    every key starts with "base_model.model.".
"""
import argparse
import copy
import json
import os
import re
import sys

import torch
from torch import nn

ADAPTER = "default"


class Unsupported(Exception):
    pass


def read_safetensors(path):
    """{name: shape} from the header (8-byte little-endian length, then JSON)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def ns(**children):
    m = nn.Module()
    for k, v in children.items():
        m.add_module(k, v)
    return m


def classifier_model(model_type, layers, d, inter, labels):
    """The module tree of transformers' BertForSequenceClassification / RobertaForSequenceClassification."""
    def layer():
        return ns(
            attention=ns(self=ns(query=nn.Linear(d, d), key=nn.Linear(d, d), value=nn.Linear(d, d)),
                         output=ns(dense=nn.Linear(d, d), LayerNorm=nn.LayerNorm(d))),
            intermediate=ns(dense=nn.Linear(d, inter)),
            output=ns(dense=nn.Linear(inter, d), LayerNorm=nn.LayerNorm(d)),
        )
    embeddings = ns(word_embeddings=nn.Embedding(8, d), position_embeddings=nn.Embedding(8, d),
                    token_type_embeddings=nn.Embedding(1, d), LayerNorm=nn.LayerNorm(d))
    encoder = ns(layer=nn.ModuleList([layer() for _ in range(layers)]))
    if model_type == "bert":
        return ns(bert=ns(embeddings=embeddings, encoder=encoder, pooler=ns(dense=nn.Linear(d, d))), classifier=nn.Linear(d, labels))
    if model_type in ("roberta", "xlm-roberta"):
        return ns(roberta=ns(embeddings=embeddings, encoder=encoder), classifier=ns(dense=nn.Linear(d, d), out_proj=nn.Linear(d, labels)))
    raise Unsupported(f"model type {model_type!r}")


def target_matches(name, config):
    targets = config["target_modules"]
    if isinstance(targets, str):
        found = re.fullmatch(targets, name) is not None
    else:
        found = name in targets or any(name.endswith("." + t) for t in targets)
    layers = config.get("layers_to_transform")
    if found and layers is not None:
        m = re.search(r"\.layer\.(\d+)\.", name)
        layers = [layers] if isinstance(layers, int) else layers
        found = m is not None and int(m.group(1)) in layers
    return found


class LoraLinear(nn.Module):
    def __init__(self, base, r):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.ModuleDict({ADAPTER: nn.Linear(base.in_features, r, bias=False)})
        self.lora_B = nn.ModuleDict({ADAPTER: nn.Linear(r, base.out_features, bias=False)})


class ModulesToSave(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.original_module = module
        self.modules_to_save = nn.ModuleDict({ADAPTER: copy.deepcopy(module)})


def replace(root, name, module):
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    parent.add_module(child, module)


def expected_tensors(config, model_type, layers, d, inter, labels):
    for field, ok in [("peft_type", config.get("peft_type") == "LORA"), ("use_dora", not config.get("use_dora")),
                      ("fan_in_fan_out", not config.get("fan_in_fan_out")), ("bias", config.get("bias", "none") == "none"),
                      ("rank_pattern", not config.get("rank_pattern"))]:
        if not ok:
            raise Unsupported(f"adapter_config.json {field} = {config.get(field)!r}")
    model = classifier_model(model_type, layers, d, inter, labels)
    r = config["r"]
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and target_matches(name, config):
            replace(model, name, LoraLinear(module, r))
    saved = list(config.get("modules_to_save") or [])
    if config.get("task_type") == "SEQ_CLS":
        saved += [m for m in ("classifier", "score") if m not in saved]
    for name, module in list(model.named_modules()):
        if name and any(name.endswith(t) for t in saved) and not isinstance(module, (LoraLinear, ModulesToSave)) \
                and ".modules_to_save." not in name and ".original_module" not in name:
            replace(model, name, ModulesToSave(module))
    state = {"base_model.model." + k: list(v.shape) for k, v in model.state_dict().items()}
    kept = {}
    for k, shape in state.items():
        if "lora_" in k:
            kept[k] = shape
        elif "modules_to_save." + ADAPTER in k:
            kept[k.replace("modules_to_save.", "")] = shape
    return {k.replace("." + ADAPTER, ""): v for k, v in kept.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir")
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--intermediate-size", type=int, required=True)
    p.add_argument("--labels", type=int, required=True)
    p.add_argument("--model-type", default="bert")
    a = p.parse_args()
    try:
        with open(os.path.join(a.dir, "adapter_config.json")) as f:
            config = json.load(f)
        actual = read_safetensors(os.path.join(a.dir, "adapter_model.safetensors"))
        expected = expected_tensors(config, a.model_type, a.layers, a.hidden, a.intermediate_size, a.labels)
    except (OSError, KeyError, ValueError, Unsupported) as err:
        print(f"check-peft-export: {err}", file=sys.stderr)
        return 2
    problems = []
    for k in sorted(expected):
        if k not in actual:
            problems.append(f"missing in adapter_model.safetensors: {k} {expected[k]}")
        elif actual[k] != expected[k]:
            problems.append(f"shape of {k}: {actual[k]}, PEFT creates {expected[k]}")
    for k in sorted(set(actual) - set(expected)):
        problems.append(f"unexpected in adapter_model.safetensors: {k} {actual[k]} (PEFT would not load it)")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"ok: {len(expected)} tensors as PEFT saves them (r {config['r']}, lora_alpha {config.get('lora_alpha')}, target_modules {config['target_modules']}, modules_to_save {config.get('modules_to_save')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
