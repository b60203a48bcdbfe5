"""`fashion-ddpm push`: upload a saved model to a Hub model repo, its card rendered for that repo (pipeline/hub.py).

    fashion-ddpm push --model pretrained/fashion-ddpm-gpu --repo-id you/fashion-ddpm
    fashion-ddpm push --model runs/style --repo-id you/fashion-ddpm-style --base-model you/fashion-ddpm --private
"""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("push", help="upload a saved model folder to a Hugging Face Hub model repo")
    p.add_argument("--model", required=True, help="the saved pipeline folder to upload")
    p.add_argument("--repo-id", required=True, help="user/name of the Hub model repo (created when missing)")
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its setting)")
    p.add_argument("--revision", default=None, help="a branch to push to (created from main when missing)")
    p.add_argument("--token", default=None, help="a Hub token (default: HF_TOKEN, then the saved `hf auth login`)")
    p.add_argument("--base-model", default=None,
                   help="Hub id of the model this one was fine-tuned or distilled from (default: its folder name in "
                        "the same namespace, which must exist)")
    p.set_defaults(func=run)


def run(args):
    from ..hub import push_model

    url = push_model(args.model, args.repo_id, token=args.token, private=args.private, revision=args.revision,
                     base_model=args.base_model)
    print(f"pushed {args.model} to {url}")
    return url
