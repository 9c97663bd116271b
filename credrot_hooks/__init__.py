"""The pre-commit hook ``qwen-review``: its entry module, its review logic and prompt template.

The hook holds no rotation logic: :mod:`credrot_hooks.review` turns a staged diff into
prompts and a verdict (pure), :mod:`credrot_hooks.qwen_review` runs them through
:mod:`credrot.wrapper`.
"""
