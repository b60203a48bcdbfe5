"""How long the web demo makes a visitor wait: click-to-grid in a real browser, and several users at once.

Starts `python -m pipeline.cli demo [--model MODEL] [--student STUDENT]` in a subprocess (torch threads: --threads;
without --model the shipped default and its few-step student, as `fashion-ddpm demo` serves them) and waits until it
has served its own warm-up request (`pipeline.demo.serve`, as for any visitor); on a page of two models the browser
first picks the one --choose names in the Model choice (default: the page's first), then
  browser       headless Chromium (Playwright, /usr/bin/chromium) opens the page and clicks Generate with the page's
                defaults (every class, the model's sampler, steps and guidance); timed from the click until the grid
                image has loaded, and until the reverse-process GIF has; --rounds times, median reported.
  concurrent    N gradio_client users send the default request at the same moment (N = 1 and --users); each
                request's latency from send to result, and the wall time until all have their images.
  fast          one gradio_client request with a faster sampler (--fast SAMPLER:STEPS, default dpm++:10).
The server queues requests (pipeline.demo.CONCURRENCY_LIMIT at a time), so N users wait about N times one request.

Usage:
  python -m benchmarks.demo_latency --screenshot docs/demo.png --out benchmarks/results    # the shipped pair
  python -m benchmarks.demo_latency --choose fast --name demo_latency_student --out benchmarks/results
  python -m benchmarks.demo_latency --smoke              # a tiny random model and its tiny student, seconds
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.harness import REPO, emit, machine_info, markdown_table, median, parser, repo_relative, smoke_pipeline

NAME = "demo_latency"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], model=True, threads=1, out=True,
               model_default="the shipped model beside its student", smoke="a tiny random model and its tiny student")
    p.add_argument("--student", default=None, help="a few-step student served beside --model (fashion-ddpm demo --student)")
    p.add_argument("--choose", default=None,
                   help="on a page of two models, the Model choice whose label contains this text (default: the first)")
    p.add_argument("--name", default=NAME, help="result file name (default %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="browser clicks, median reported (default 2)")
    p.add_argument("--users", type=int, default=3, help="simultaneous gradio_client users (default 3)")
    p.add_argument("--fast", default="dpm++:10", help="SAMPLER:STEPS of the one faster request (default dpm++:10)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--screenshot", help="save a full-page screenshot after the first round here (e.g. docs/demo.png)")
    args = p.parse_args(argv)
    sampler, _, steps = args.fast.partition(":")
    if not steps.isdigit():
        p.error(f"--fast must be SAMPLER:STEPS such as dpm++:10, got {args.fast!r}")
    args.fast = (sampler, int(steps))
    if min(args.rounds, args.users, args.threads) < 1:
        p.error("--rounds, --users and --threads must be >= 1")
    return args


def start_server(flags: list[str], threads: int, log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """The demo server (`flags`: its --model / --student) on a free port: (process, URL, seconds from start until it
    has served its warm-up request)."""
    from pipeline.demo import WARM_LINE

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "demo", *flags, "--port", str(port)],
                                   cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the demo server exited:\n{log_path.read_text()[-3000:]}")
        if WARM_LINE in log_path.read_text():
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return process, url, time.perf_counter() - start
        time.sleep(0.2)


def stop_server(process: subprocess.Popen):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def browser_rounds(url: str, args, label: str | None) -> list[dict]:
    """Clicks Generate --rounds times (seeds 0, 1, ...) with the page's defaults, after choosing `label` in the Model
    choice of a page of two models."""
    from playwright.sync_api import sync_playwright

    loaded = "(prev) => { const i = document.querySelector(SEL); return i && i.complete && i.naturalWidth > 0 && i.src !== prev; }"
    rounds = []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(profile, executable_path=args.chromium, args=CHROMIUM_ARGS,
                                                       headless=True, viewport={"width": 1400, "height": 1250})
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#generate", timeout=120_000)
            if label is not None:
                page.check(f"#model input[value='{label}']")
                page.wait_for_timeout(1000)  # the model's sampler, steps and guidance fill in
            for k in range(args.rounds):
                page.fill("#seed input", str(k))
                page.locator("#seed input").blur()
                grid_before = page.evaluate("() => document.querySelector('#grid img')?.src || ''")
                gif_before = page.evaluate("() => document.querySelector('#reverse-gif img')?.src || ''")
                start = time.perf_counter()
                page.click("#generate")
                page.wait_for_function(loaded.replace("SEL", "'#grid img'"), arg=grid_before, timeout=600_000, polling=50)
                grid_s = time.perf_counter() - start
                page.wait_for_function(loaded.replace("SEL", "'#reverse-gif img'"), arg=gif_before, timeout=600_000,
                                       polling=50)
                rounds.append({"seed": k, "click_to_grid_s": round(grid_s, 2),
                               "click_to_reverse_gif_s": round(time.perf_counter() - start, 2),
                               "info": page.inner_text("#info").split("\n")[0]})
                print(f"round {k}: {rounds[-1]}", file=sys.stderr)
                if k == 0 and args.screenshot:
                    page.click("text=Forward process")  # open the accordion, if the figure is there
                    page.wait_for_timeout(1000)
                    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=args.screenshot, full_page=True)
        finally:
            browser.close()
    return rounds


def concurrent_users(url: str, users: int, defaults: dict, extra: list, sampler: str | None = None,
                     steps: int | None = None) -> dict:
    """`users` gradio_client requests sent together (`extra`: the style text and model label the page also takes)."""
    from gradio_client import Client

    sampler, steps = sampler or defaults["sampler"], steps or defaults["steps"]
    clients = [Client(url, verbose=False) for _ in range(users)]
    seeds = [100 + k for k in range(users)]
    latencies, errors = [None] * users, []
    barrier = threading.Barrier(users)

    def user(k):
        barrier.wait()
        start = time.perf_counter()
        try:
            clients[k].predict(defaults["classes"], defaults["per_class"], sampler, steps,
                               defaults["guidance"], seeds[k], *extra, api_name="/generate")
            latencies[k] = round(time.perf_counter() - start, 2)
        except Exception as e:  # reported in the result
            errors.append(f"{type(e).__name__}: {e}")

    start = time.perf_counter()
    threads = [threading.Thread(target=user, args=(k,)) for k in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"users": users, "sampler": sampler, "steps": steps, "seeds": seeds,
            "latencies_s": sorted(x for x in latencies if x is not None), "all_done_s": round(time.perf_counter() - start, 2),
            "errors": errors}


def main(argv=None):
    args = parse_args(argv)
    from pipeline import demo

    work = Path(tempfile.mkdtemp(prefix="demo-latency-"))
    model, student = args.model, args.student
    if args.smoke:  # the server loads folders
        model, student = str(work / "tiny"), str(work / "tiny-student")
        smoke_pipeline().save_pretrained(model)
        smoke_student(smoke_pipeline()).save_pretrained(student)
    # the server runs in the repository: a folder inside it is passed (and shown on the page, and in the result)
    # repository-relative, one outside it absolute
    served = [repo_relative(str(Path(m).resolve())) if m else None for m in (model, student)]
    pipes = offered(served[0], served[1])
    chosen = next((m for m in pipes if args.choose is None or args.choose in m.label), None)
    if chosen is None:
        raise SystemExit(f"error: --choose {args.choose!r} is in none of the page's models {[m.label for m in pipes]}")
    defaults = demo.defaults(chosen.pipe)
    extra = ([""] if len(pipes) > 1 or chosen.pipe.style_attributes else []) + ([chosen.label] if len(pipes) > 1 else [])
    machine = machine_info(args.threads)
    flags = [x for flag, m in zip(("--model", "--student"), served) if m for x in (flag, m)]
    process, url, ready_s = start_server(flags, args.threads, work / "server.log")
    try:
        rounds = browser_rounds(url, args, chosen.label if len(pipes) > 1 else None)
        concurrency = [concurrent_users(url, n, defaults, extra) for n in sorted({1, args.users})]
        fast = concurrent_users(url, 1, defaults, extra, *args.fast) if not chosen.pipe.is_distilled else None
    finally:
        stop_server(process)
    result = {"benchmark": NAME, "model": "smoke (tiny random)" if args.smoke else (served[0] or "the shipped model"),
              "page_models": [m.label for m in pipes], "chosen": chosen.label,
              "request": {k: v for k, v in defaults.items() if k != "classes"} | {"classes": len(defaults["classes"])},
              "server_threads": args.threads, "server_start_to_ready_s": round(ready_s, 1), "browser_rounds": rounds,
              "median_click_to_grid_s": median([r["click_to_grid_s"] for r in rounds]),
              "median_click_to_reverse_gif_s": median([r["click_to_reverse_gif_s"] for r in rounds]),
              "concurrent": concurrency, "fast": fast, "machine": machine}
    request = (f"{len(defaults['classes'])} classes x {defaults['per_class']} image, {defaults['sampler']} "
               f"{defaults['steps']} steps, guidance {defaults['guidance']:g}")
    rows = [["browser click -> grid", 1, f"{result['median_click_to_grid_s']:.1f} (median of {len(rounds)})", "-"],
            ["browser click -> reverse GIF", 1, f"{result['median_click_to_reverse_gif_s']:.1f}", "-"]]
    rows += [["gradio_client, sent together", c["users"], ", ".join(f"{x:.1f}" for x in c["latencies_s"]),
              f"{c['all_done_s']:.1f}" + (f" ({len(c['errors'])} errors)" if c["errors"] else "")] for c in concurrency]
    if fast is not None:  # (a student takes only its own sampler)
        rows.append([f"gradio_client, {fast['sampler']} {fast['steps']} steps", 1, ", ".join(f"{x:.1f}" for x in fast["latencies_s"]),
                     f"{fast['all_done_s']:.1f}" + (f" ({len(fast['errors'])} errors)" if fast["errors"] else "")])
    markdown = (f"## Demo latency: {result['chosen']}\n\nDefault request ({request}); server torch threads: {args.threads}; "
                f"server start to ready (page up, its warm-up request served): {ready_s:.1f} s.\n\n"
                + markdown_table(["what", "users", "seconds per request", "all done (s)"], rows))
    emit(args.name, result, markdown, args)


def offered(model: str | None, student: str | None) -> list:
    """The page's models (`pipeline.demo.DemoModel`), as `fashion-ddpm demo` with these flags offers them."""
    import argparse

    from pipeline.cli.demo import shipped_student
    from pipeline.demo import offered_models
    from pipeline.models import load_pipeline

    fast = shipped_student(argparse.Namespace(model=model, student=student, device=None))
    return offered_models(load_pipeline(model), model, fast, student)


def smoke_student(teacher):
    """A tiny few-step student of `teacher`, untrained (its distillation MLP at zero), for the smoke run."""
    from pipeline.training.distill import build_student, student_pipeline, validate

    return student_pipeline(teacher, validate({"guidance_values": [1, 3], "distill_hidden_dim": 8}),
                            build_student(teacher, validate({"guidance_values": [1, 3], "distill_hidden_dim": 8})))


if __name__ == "__main__":
    main()
