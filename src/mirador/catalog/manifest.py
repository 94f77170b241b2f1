"""The manifest: which models exist, which personas ride on them, which chains run them.

Mirador ships a built-in manifest (`mirador/defaults/manifest.yaml`). A user's
`~/.mirador/manifest.yaml` adds entries, or replaces built-in ones with the
same id. Parsing checks the shape; `Manifest.check_references` checks that the
ids point somewhere (and `check_files` that GGUF files exist).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mirador import plugins
from mirador.errors import ConfigError, ModelNotFoundError
from mirador.yamlfile import describe_validation_error, read_yaml

if TYPE_CHECKING:
    from mirador.settings import Settings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingOptions(Strict):
    """Generation options a persona or a request may set; None means the backend's default."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    repeat_penalty: float | None = Field(default=None, gt=0.0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None

    def merged(self, override: SamplingOptions | None) -> SamplingOptions:
        """These options with every field `override` sets taken from it."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class ModelEntry(Strict):
    """A base model: a file or a name that some backend can run."""

    id: str
    backend: str = Field(default="llamacpp", description="llamacpp, ollama, openai or a plugin's.")
    path: str | None = Field(default=None, description="llamacpp: a GGUF file.")
    package: str | None = Field(default=None,
                                description="llamacpp: a PyPI package shipping a GGUF.")
    name: str | None = Field(default=None,
                             description="ollama tag or OpenAI-compatible model name.")
    context_length: int = Field(default=4096, ge=256)
    memory_bytes: int | None = Field(default=None, ge=0, description="Estimated resident size.")
    tags: list[str] = []
    triggers: list[str] = []
    priority: int = 0
    pinned: bool = False
    keep_alive: float | None = Field(default=None, description="Seconds idle before unloading.")
    embedding: bool = Field(default=False, description="An embedding model: it makes vectors "
                            "(/api/embed, /v1/embeddings), not chat; no persona rides on it.")

    @model_validator(mode="after")
    def _has_source(self) -> ModelEntry:
        # Which of these a backend needs is its own declaration (`BackendSpec.needs`),
        # checked once the backend registry is at hand (`mirador.backends.entry_problem`).
        if not (self.path or self.package or self.name):
            raise ValueError(f"model '{self.id}' says nothing about where it comes from: give "
                             "it the 'name' its backend knows it by, a 'path' to a GGUF file "
                             "or a 'package' that ships one")
        return self

    @property
    def source(self) -> str:
        if self.path:
            return self.path
        return f"package:{self.package}" if self.package else f"{self.backend}:{self.name}"


class LoraAdapter(Strict):
    path: str
    scale: float = 1.0


class Example(Strict):
    """One example exchange shown to the model before the real question (few-shot)."""

    user: str
    assistant: str


class Speculation(Strict):
    """Speculative decoding for a persona's replies: the model checks several guessed
    tokens in one pass and keeps those it would have chosen itself.

    `prompt_lookup` guesses by finding the last `ngram` tokens earlier in the prompt and
    proposing the `draft_tokens` that followed them there: it pays when the reply
    repeats its input (a synthesis of earlier stages, a summary). llama.cpp only."""

    method: Literal["prompt_lookup"] = Field(default="prompt_lookup", description="How "
                                             "guesses are made: 'prompt_lookup'.")
    draft_tokens: int = Field(default=10, ge=1, le=64, description="Tokens guessed at once.")
    ngram: int = Field(default=2, ge=1, le=8, description="Longest run of recent tokens "
                       "looked up in the prompt.")


class PersonaEntry(Strict):
    """A base model (or another persona) plus a system prompt and sampling options."""

    id: str
    model: str = Field(description="A model id, or another persona id to build on.")
    system: str | None = None
    examples: list[Example] = Field(default=[], description="Few-shot exchanges; small base "
                                    "models follow a shown form far better than instructions.")
    options: SamplingOptions = SamplingOptions()
    lora: LoraAdapter | None = None
    triggers: list[str] = []
    description: str = ""
    request: str | None = Field(default=None, description="What this persona is asked to do "
                                "when it follows another stage in a chain (its job, in a line).")
    tools: list[str] = Field(default=[], description="Tools it may call ('mirador tools' lists "
                             "them); checked against the tool registry when Mirador starts.")
    speculative: Speculation | None = Field(default=None, description="Speculative decoding "
                                            "(llama.cpp models only; see Speculation).")


class ChainEntry(Strict):
    """A named sequence of personas run as progressive stages."""

    id: str
    description: str = ""
    steps: list[str] = Field(min_length=1, description="Persona ids, in order.")
    capabilities: list[str] = Field(default=[], description="Query types it is meant for "
                                    "(a prior for learning).")


AUTO_CHAIN = "auto"
"""The pseudo-chain that runs the configured stages, routed by the query's complexity."""


class Manifest(Strict):
    models: list[ModelEntry] = []
    personas: list[PersonaEntry] = []
    chains: list[ChainEntry] = []
    candidates: dict[str, list[str]] = Field(
        default={}, description="Query type -> chain ids that may answer it ('auto' included).")

    @model_validator(mode="after")
    def _no_persona_on_an_embedder(self) -> Manifest:
        embedders = {m.id for m in self.models if m.embedding}
        for persona in self.personas:
            if persona.model in embedders:
                raise ValueError(f"persona '{persona.id}' rides on model '{persona.model}', "
                                 "an embedding model (embedding: true) that cannot chat; "
                                 "point it at a chat model")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> Manifest:
        seen: dict[str, str] = {}
        for kind, entries in (("model", self.models), ("persona", self.personas)):
            for entry in entries:
                if entry.id in seen:
                    raise ValueError(f"duplicate id '{entry.id}' ({seen[entry.id]} and {kind}); "
                                     "every model and persona needs its own id")
                seen[entry.id] = kind
        chain_ids = [c.id for c in self.chains]
        dupes = sorted({c for c in chain_ids if chain_ids.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate chain id(s): {', '.join(dupes)}")
        return self

    # -- lookups -------------------------------------------------------------

    def model(self, model_id: str) -> ModelEntry:
        for entry in self.models:
            if entry.id == model_id:
                return entry
        raise ModelNotFoundError(
            f"model '{model_id}' is not in the manifest (known: {self._known(self.models)}); "
            "add it to ~/.mirador/manifest.yaml")

    def persona(self, persona_id: str) -> PersonaEntry:
        for entry in self.personas:
            if entry.id == persona_id:
                return entry
        raise ModelNotFoundError(
            f"persona '{persona_id}' is not in the manifest (known: {self._known(self.personas)}); "
            "add it to ~/.mirador/manifest.yaml")

    def chain(self, chain_id: str) -> ChainEntry:
        for entry in self.chains:
            if entry.id == chain_id:
                return entry
        raise ModelNotFoundError(
            f"chain '{chain_id}' is not in the manifest (known: {self._known(self.chains)}); "
            "run 'mirador chains' to list them")

    def has_model(self, model_id: str) -> bool:
        return any(m.id == model_id for m in self.models)

    def has_persona(self, persona_id: str) -> bool:
        return any(p.id == persona_id for p in self.personas)

    def resolve(self, ref: str) -> ResolvedPersona:
        """A persona or model id, flattened to base model + system prompt + options + adapters."""
        if self.has_model(ref) and not self.has_persona(ref):
            return ResolvedPersona(id=ref, model=self.model(ref), system=None,
                                   options=SamplingOptions(), loras=(), examples=())
        chain: list[PersonaEntry] = []
        current = self.persona(ref)
        while True:
            if current in chain:
                cycle = " -> ".join([p.id for p in chain] + [current.id])
                raise ConfigError(f"persona cycle: {cycle}; make one of them name a model")
            chain.append(current)
            if self.has_persona(current.model):
                current = self.persona(current.model)
                continue
            if not self.has_model(current.model):
                raise ModelNotFoundError(
                    f"persona '{current.id}' is based on '{current.model}', which is neither a "
                    f"model nor a persona in the manifest (models: {self._known(self.models)}); "
                    "fix its 'model' or add that model to ~/.mirador/manifest.yaml")
            base = self.model(current.model)
            break
        system: str | None = None
        examples: list[Example] = []
        options = SamplingOptions()
        loras: list[LoraAdapter] = []
        request: str | None = None
        tools: list[str] = []
        speculative: Speculation | None = None
        for persona in reversed(chain):  # the base-most persona first, the named one last
            system = persona.system if persona.system is not None else system
            request = persona.request if persona.request is not None else request
            tools = persona.tools or tools
            examples = persona.examples or examples
            speculative = persona.speculative or speculative
            options = options.merged(persona.options)
            if persona.lora is not None:
                loras.append(persona.lora)
        return ResolvedPersona(id=ref, model=base, system=system, options=options,
                               loras=tuple(loras), examples=tuple(examples), request=request,
                               tools=tuple(tools), speculative=speculative)

    def check_references(self) -> list[str]:
        """Problems with ids that point nowhere or in circles; empty when all is well."""
        problems = []
        for persona in self.personas:
            try:
                self.resolve(persona.id)
            except (ModelNotFoundError, ConfigError) as exc:
                problems.append(f"persona '{persona.id}': {exc}")
        for chain in self.chains:
            problems.extend(f"chain '{chain.id}': step '{step}' is not a persona or model"
                            for step in chain.steps
                            if not (self.has_persona(step) or self.has_model(step)))
        chain_ids = {c.id for c in self.chains} | {AUTO_CHAIN}
        for query_type, chains in self.candidates.items():
            problems.extend(f"candidates '{query_type}': chain '{c}' is not declared"
                            for c in chains if c not in chain_ids)
        return problems

    def check_files(self) -> list[str]:
        """Problems with GGUF files that do not exist."""
        problems = []
        for model in self.models:
            if model.path and not Path(model.path).expanduser().is_file():
                problems.append(f"model '{model.id}': file {model.path} does not exist; "
                                "fix 'path' or download the GGUF there")
        for persona in self.personas:
            if persona.lora and not Path(persona.lora.path).expanduser().is_file():
                problems.append(f"persona '{persona.id}': LoRA file {persona.lora.path} "
                                "does not exist; fix 'lora.path'")
        return problems

    @staticmethod
    def _known(entries: list[Any]) -> str:
        return ", ".join(e.id for e in entries) or "none"


class ResolvedPersona(BaseModel):
    """What a stage actually runs: a base model with a prompt, options and adapters."""

    model_config = ConfigDict(frozen=True)

    id: str
    model: ModelEntry
    system: str | None
    options: SamplingOptions
    loras: tuple[LoraAdapter, ...]
    examples: tuple[Example, ...] = ()
    request: str | None = None
    tools: tuple[str, ...] = ()
    speculative: Speculation | None = None


def builtin_manifest_data() -> dict:
    text = resources.files("mirador.defaults").joinpath("manifest.yaml").read_text("utf-8")
    import yaml

    from mirador.yamlfile import SAFE_LOADER

    return yaml.load(text, Loader=SAFE_LOADER)


def _move_builtin_personas(data: dict, extra: dict, model: str, path: Path | None) -> None:
    known = [m.get("id") for m in data.get("models") or [] if isinstance(m, dict)]
    if model not in known:
        raise ConfigError(
            f"config.yaml: default_model '{model}' is not a model in the manifest (known: "
            f"{', '.join(str(k) for k in known)}); declare it in {path or 'manifest.yaml'}, "
            "fetch one with 'mirador pull', or remove default_model")
    own = {e.get("id") for e in extra.get("personas") or [] if isinstance(e, dict)}
    for persona in data.get("personas") or []:
        if (isinstance(persona, dict) and persona.get("id") not in own
                and persona.get("model") == BUILTIN_DEFAULT_MODEL):
            persona["model"] = model


def plugin_chains() -> list[dict]:
    """The chains plugins register (`register_chains` hook); the user's manifest overrides them."""
    chains: list[dict] = []
    plugins.call("register_chains", chains.append,
                 lambda chain: str(chain.get("id")) if isinstance(chain, dict) else repr(chain))
    return chains


def merge_manifest_data(base: dict, extra: dict) -> dict:
    """`extra`'s entries added to `base`'s; an entry with a known id replaces the old one."""
    merged: dict[str, Any] = {}
    for key in ("models", "personas", "chains"):  # lists of entries with ids
        by_id = {e["id"]: e for e in base.get(key) or [] if isinstance(e, dict) and "id" in e}
        for entry in extra.get(key) or []:
            if isinstance(entry, dict) and "id" in entry:
                by_id[entry["id"]] = entry
            else:
                by_id[f"<entry {len(by_id)}>"] = entry  # let validation report it
        merged[key] = list(by_id.values())
    merged["candidates"] = {**(base.get("candidates") or {}), **(extra.get("candidates") or {})}
    unknown = set(extra) - {"models", "personas", "chains", "candidates"}
    for key in unknown:
        merged[key] = extra[key]  # validation reports unknown top-level keys
    return merged


BUILTIN_DEFAULT_MODEL = "smollm2-135m"
"""The model the built-in personas run on unless config.yaml's `default_model` says otherwise."""


def manifest_for(settings: Settings) -> Manifest:
    """The manifest in the settings' home, with config.yaml's `default_model` applied."""
    return load_manifest(settings.manifest_path, settings.config.default_model)


def load_manifest(path: Path | None, default_model: str | None = None) -> Manifest:
    """The built-in manifest, plus the user's file at `path` when it exists.

    With `default_model` (config.yaml's), the built-in personas that run on the built-in
    default model run on that model instead; personas the user's file redefines keep theirs.
    """
    from pydantic import ValidationError

    data = merge_manifest_data(builtin_manifest_data(), {"chains": plugin_chains()})
    source = Path("<built-in manifest>")
    extra = None
    if path is not None and path.exists():
        extra = read_yaml(path)
        data = merge_manifest_data(data, extra)
        source = path
    if default_model and default_model != BUILTIN_DEFAULT_MODEL:
        _move_builtin_personas(data, extra or {}, default_model, path)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc)) from None
    problems = manifest.check_references()
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    return manifest
