"""PyTorch's own bf16 autocast error on the reference fixtures: the relative L2 error of each output and gradient
against the float32 fixture values (same weights and inputs), and of AdamW's first update. The yardstick for the
bf16 tolerances in Tests/TestSupport/RelativeL2.swift.

usage: python3 scripts/bf16/torch_bf16_error.py [REF_DIR]   (REF_DIR holds ref_model.py; default
../shared/reference/pytorch; needs torch, no other package)
"""
import os, sys, torch
import json, struct
def load_file(path):
    data = open(path, "rb").read(); n = struct.unpack("<Q", data[:8])[0]; h = json.loads(data[8:8 + n]); base = 8 + n
    dt = {"F32": torch.float32, "I64": torch.int64}
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "reference", "pytorch"))
from ref_model import *
import torch.nn.functional as F
for name in ["tiny", "tiny-class"]:
    T = load_file(os.path.join(ROOT, "Tests", "TestSupport", "Fixtures", f"{name}.safetensors"))
    cfg = CONFIGS[name]
    unet = UNet(cfg); unet.load_state_dict({k[5:]: v for k, v in T.items() if k.startswith("unet.")})
    control = ControlNet.from_unet(unet); control.load_state_dict({k[8:]: v for k, v in T.items() if k.startswith("control.")})
    x0, eps, hint, t = T["input.x0"], T["input.eps"], T["input.hint"], T["input.t"]
    y = T.get("input.label")
    x_t = Schedule().q_sample(x0, t, eps)
    def rel(a, b):
        a, b = a.float().flatten(), b.float().flatten()
        return ((a - b).norm() / max(b.norm(), 1e-30)).item()
    errs = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = unet(x_t, t, y); loss = F.mse_loss(out.float(), eps)
    loss.backward()
    errs["unet_out"] = rel(out, T["expect.unet_out"])
    for k, p in unet.named_parameters(): errs["grad.unet." + k] = rel(p.grad, T["expect.grad.unet." + k])
    unet.zero_grad(set_to_none=True)
    for p in unet.parameters(): p.requires_grad_(False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = control(x_t, hint, t, y)
        out = unet(x_t, t, y, control=res); loss = F.mse_loss(out.float(), eps)
    loss.backward()
    errs["controlled_out"] = rel(out, T["expect.controlled_out"])
    for i, r in enumerate(res): errs[f"residual.{i}"] = rel(r, T[f"expect.residual.{i}"])
    for k, p in control.named_parameters(): errs["grad.control." + k] = rel(p.grad, T["expect.grad.control." + k])
    for group in ["unet_out", "residual", "controlled_out", "grad.unet", "grad.control"]:
        vals = sorted(((v, k) for k, v in errs.items() if k.startswith(group)), reverse=True)
        med = vals[len(vals)//2][0]
        print(f"{name} {group}: {len(vals)} tensors, worst {vals[0][0]:.4f} ({vals[0][1]}), median {med:.4f}")
    before = {k: v.clone() for k, v in T.items() if k.startswith("control.")}
    opt = torch.optim.AdamW(control.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    opt.step()
    ours, theirs = [], []
    for k, p in control.named_parameters():
        b = before["control." + k]
        ours.append((p.detach() - b).flatten()); theirs.append((T["expect.adamw.control." + k] - b).flatten())
    o, t_ = torch.cat(ours), torch.cat(theirs)
    print(f"{name} AdamW update with autocast bf16 gradients: relative L2 {((o - t_).norm() / t_.norm()).item():.3f}, "
          f"sign agreement {(torch.sign(o) == torch.sign(t_)).float().mean().item():.4f}")
