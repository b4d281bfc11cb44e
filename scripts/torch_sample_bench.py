"""PyTorch on the same sampling work as `controlnet bench --mode sample`: DDIM (eta 0, x0 clipped) through the
reference UNet and its ControlNets, under no_grad, in passes of BATCH samples cut as GenerationPlan cuts them,
each process (WORLD > 1: one per rank, THREADS each) taking a contiguous run of passes as our ranks do.

usage: torch_sample_bench.py REF_DIR CONFIG BATCH COUNT STEPS THREADS [WORLD [CONTROLS [CFG]]]
REF_DIR holds the reference's ref_model.py (read-only; imported, never changed). One evaluation is one sample
through one denoising step; with CFG != 1 on a class config the conditional and unconditional predictions are
one UNet pass of 2N, as ours. Environment: AMP=bf16 autocasts to bfloat16; REPEATS=N timed runs (default 3),
after one untimed run of one step. Prints one line:
  [eager fp32] torch VERSION sample CONFIG batch B count N steps S threads T world W: X s/run, Y evaluations/s, peak RSS rank0 Z MiB
"""
import os, sys, time, resource
import torch
import torch.multiprocessing as mp


def passes(count, batch):
    """GenerationPlan.passes: ceil(count / batch) passes, equal to within one sample."""
    k = (count + batch - 1) // batch
    return [(j * count // k, (j + 1) * count // k) for j in range(k)]


def run(rank, world, ref, cfg_name, batch, count, steps, threads, controls, cfg_scale, repeats, barrier, q):
    sys.path.insert(0, ref)
    import ref_model as R
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = R.CONFIGS[cfg_name]
    S = cfg.image_size
    unet = R.UNet(cfg).eval()
    nets = [R.ControlNet.from_unet(unet).eval() for _ in range(controls)]
    sched = R.Schedule()
    ac = sched.alphas_cumprod.float()
    stride = 1000 // steps
    ts = [i * stride for i in range(steps)][::-1]
    guided = cfg.num_classes > 0 and cfg_scale != 1.0
    allp = passes(count, batch)
    mine = allp[rank * len(allp) // world:(rank + 1) * len(allp) // world]
    hint_all = (torch.rand(count, cfg.hint_channels, S, S) > 0.8).float()
    labels_all = torch.arange(count) % cfg.num_classes if cfg.num_classes else None
    amp = os.environ.get("AMP") == "bf16"

    def denoise(x, hint, t, y):
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        control = None
        for net in nets:
            r = net(x, hint, tt, y)
            control = r if control is None else [a + b for a, b in zip(control, r)]
        if not guided:
            return unet(x, tt, y, control=control)
        none = torch.full_like(y, cfg.num_classes)
        pair = None if control is None else [torch.cat([c, c]) for c in control]
        out = unet(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, none]), control=pair)
        cond, uncond = out.chunk(2)
        return uncond + cfg_scale * (cond - uncond)

    def sample(n_steps):
        for (a, b) in mine:
            x = torch.randn(b - a, cfg.in_channels, S, S)
            hint = hint_all[a:b]
            y = labels_all[a:b] if labels_all is not None else None
            sub = ts if n_steps == steps else ts[:n_steps]
            for i, t in enumerate(sub):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    eps = denoise(x, hint, t, y).float()
                a_t = ac[t]
                a_prev = ac[sub[i + 1]] if i + 1 < len(sub) else torch.tensor(1.0)
                x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
                e = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
                x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e

    with torch.no_grad():
        sample(1)
        times = []
        for _ in range(repeats):
            barrier.wait()
            s = time.perf_counter()
            sample(steps)
            times.append(time.perf_counter() - s)
    q.put((rank, times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    ref, cfg_name = sys.argv[1], sys.argv[2]
    batch, count, steps, threads = (int(v) for v in sys.argv[3:7])
    world = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    controls = int(sys.argv[8]) if len(sys.argv) > 8 else 1
    cfg_scale = float(sys.argv[9]) if len(sys.argv) > 9 else 1.0
    repeats = int(os.environ.get("REPEATS", "3"))
    ctx = mp.get_context("spawn")
    q, barrier = ctx.Queue(), ctx.Barrier(world)
    args = (world, ref, cfg_name, batch, count, steps, threads, controls, cfg_scale, repeats, barrier, q)
    ps = [ctx.Process(target=run, args=(r,) + args) for r in range(world)]
    for p in ps: p.start()
    results = sorted(q.get() for _ in range(world))
    for p in ps: p.join()
    # Each run counts at its slowest process, as ours.
    per_run = sorted(max(r[1][i] for r in results) for i in range(repeats))
    med = per_run[len(per_run) // 2]
    variant = "AMP=bf16" if os.environ.get("AMP") == "bf16" else "eager fp32"
    print(f"[{variant}] torch {torch.__version__} sample {cfg_name} batch {batch} count {count} steps {steps} "
          f"threads {threads} world {world}: {med:.2f} s/run, {count * steps / med:.1f} evaluations/s, "
          f"peak RSS rank0 {results[0][2]:.0f} MiB")
