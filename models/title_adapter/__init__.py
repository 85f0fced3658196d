"""The title adapter: a LoRA (rank 8, query and value projections) for Qwen2.5-Coder-1.5B-Instruct that
writes chapter titles in the register podcasters use. `title_adapter.gguf` is what mediaflow.llm loads;
`train.py` makes it from creator-titled chapters (bench/title_pairs.py). Card: docs/llm.md, "The title adapter".
"""
