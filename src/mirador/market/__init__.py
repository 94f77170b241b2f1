"""The marketplace: signed packages of personas, chains and LoRA adapters.

A package is a directory (or a `.tar.gz` of one) holding `mirador-package.yaml`
(`manifest.py`), the files it lists, and `mirador.sig`, an OpenSSF
`model-signing` signature over every file (`signing.py`, keys in `keys.py`).
`install.py` verifies the signature against the keys this home trusts before
anything is written to the home, then validates the package (`checks.py`: the
manifest, adapters against their base, GGUF metadata and persona text for
template injection, and a test query set answered by the persona in the sandbox,
`probe.py`); only then are its files copied and its personas and chains added to
the home's manifest. `index.py` reads a static index (a directory or an HTTP
listing) for `mirador search-market`.
"""
