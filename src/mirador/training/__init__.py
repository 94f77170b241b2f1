"""Training personal LoRA adapters on the person's best-rated answers, on CPU, offline.

The path: the base GGUF is read into torch by transformers (which dequantizes it),
`peft` trains a LoRA on the attention projections, the adapter is written as a
llama.cpp GGUF adapter and judged by llama.cpp itself on the same quantized
base: deployed only when the held-out answers' loss beats the adapter in use and
a general set gets no worse. torch, transformers and peft are imported only when
training runs (the `train` extra).

    examples.py   exchanges rated 4-5 (and corrections from notes), split by a fixed seed
    lora.py       the torch side: load the base, train, return the LoRA's matrices
    gguf_lora.py  write those matrices as a llama.cpp LoRA GGUF
    judge.py      answer loss under llama.cpp, with and without an adapter
    trainer.py    one training run: gather, train, judge, deploy or reject
"""
