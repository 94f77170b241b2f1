"""The catalog: which models and personas exist (the manifest), what their files hold
(GGUF headers, LoRA adapters, the packaged default) and what they will weigh in memory.

It sits just above settings: backends, the model manager and everything above read it;
it imports none of them.
"""
