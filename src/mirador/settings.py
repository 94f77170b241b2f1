"""Settings: where Mirador keeps its files and what `config.yaml` may say.

Everything lives under the Mirador home (`~/.mirador`, or `$MIRADOR_HOME`).
`config.yaml` is optional; every field has a default. Unknown fields are
errors, so a typo never silently becomes a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, model_validator

from mirador.energy.profiles import EnergyConfig
from mirador.warmstart import default_home
from mirador.yamlfile import read_yaml_model

DEFAULT_PORT = 11535  # Ollama's 11434 plus 101: easy to remember, unlikely to clash.


class Strict(BaseModel):
    """Base for settings models: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class LlamaCppConfig(Strict):
    n_threads: int | None = Field(default=None, ge=1, description="None: the physical "
                                  "cores; 1 does better on a machine busy with other work.")
    n_ctx: int = Field(default=4096, ge=256)
    n_batch: int = Field(default=512, ge=8)
    sequences: int = Field(default=1, ge=1, le=64, description="Requests one loaded chat "
                           "model serves at once, decoded together in one batch; each adds "
                           "n_ctx of KV cache. 1: one at a time; 4 pays only for a server "
                           "shared by several clients (bench/load.py).")


class OllamaConfig(Strict):
    host: str | None = Field(default=None, description="None: $OLLAMA_HOST, else localhost.")
    keep_alive: str = "5m"
    timeout: float = 300.0


class OpenAIConfig(Strict):
    base_url: str = "http://127.0.0.1:8080/v1"
    api_key: str = "not-needed"
    timeout: float = 300.0


class BackendsConfig(BaseModel):
    """`backends:`: the built-ins' sections, and a section per plugin backend.

    A plugin's section is kept as written here and validated by that backend's own
    config model when the backend registry loads (`mirador.backends.check_backend_config`);
    a section no backend claims is an error there, never silently ignored.
    """

    model_config = ConfigDict(extra="allow")

    llamacpp: LlamaCppConfig = LlamaCppConfig()
    ollama: OllamaConfig = OllamaConfig()
    openai: OpenAIConfig = OpenAIConfig()

    @model_validator(mode="after")
    def _plugin_sections_are_mappings(self) -> BackendsConfig:
        for name, value in (self.model_extra or {}).items():
            if not isinstance(value, dict):
                raise ValueError(f"backends.{name} must be a mapping of that backend's "
                                 f"settings, not {type(value).__name__}")
        return self

    def plugin_sections(self) -> dict[str, Any]:
        """The sections that are not built-in, as written (name -> mapping)."""
        return dict(self.model_extra or {})

    def section(self, name: str) -> Any:
        """The section for backend `name`: a built-in's model, a plugin's mapping, or None."""
        if name in type(self).model_fields:
            return getattr(self, name)
        return self.plugin_sections().get(name)


class StageConfig(Strict):
    """One stage of a progressive answer, as data."""

    name: str
    persona: str = Field(description="A persona id, or a model id from the manifest.")
    confidence: float = Field(ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    system_prompt: str | None = None
    first_token_timeout: float = Field(default=20.0, gt=0)
    total_timeout: float = Field(default=120.0, gt=0)


def _default_stages() -> list[StageConfig]:
    return [
        StageConfig(name="quick_response", persona="quick", confidence=0.6,
                    max_tokens=160, first_token_timeout=10.0, total_timeout=30.0),
        StageConfig(name="deep_analysis", persona="analyst", confidence=0.85,
                    max_tokens=200, first_token_timeout=20.0, total_timeout=60.0),
        StageConfig(name="synthesis", persona="synthesizer", confidence=0.95,
                    max_tokens=220, first_token_timeout=20.0, total_timeout=60.0),
    ]


class RoutingConfig(Strict):
    """Which stages run for each complexity."""

    simple: list[str] = ["quick_response"]
    medium: list[str] = ["quick_response", "synthesis"]
    complex: list[str] = ["quick_response", "deep_analysis", "synthesis"]

    def stages_for(self, complexity: Literal["simple", "medium", "complex"]) -> list[str]:
        return list(getattr(self, complexity))


class ServerConfig(Strict):
    """`mirador serve`: where it listens, who may call it, how much it takes at once."""

    host: str = Field(default="127.0.0.1", description="Loopback by default; any other "
                      "address needs api_token.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    api_token: str | None = Field(default=None, description="Bearer token every API call must "
                                  "send; $MIRADOR_API_TOKEN works too.")
    max_active: int = Field(default=4, ge=1, description="Answers generated at once.")
    max_queued: int = Field(default=32, ge=0, description="Answers waiting for a slot; "
                            "beyond this a request gets 503 with Retry-After.")
    max_request_bytes: int = Field(default=1_000_000, ge=1024)
    max_tokens: int = Field(default=2048, ge=1, description="Most tokens one answer from an "
                            "Ollama/OpenAI client may generate; larger max_tokens or "
                            "num_predict (and num_predict -1, 'no limit') are capped to it.")
    cors_origins: list[str] = Field(default=[], description="Origins a browser may call from; "
                                    "none by default.")
    compat_stages: Literal["all", "final"] = Field(
        default="all", description="What Ollama/OpenAI clients see: every stage with a header "
        "line, or only the final stage.")


class ChromaServerConfig(Strict):
    """A Chroma server to keep memories in, instead of the files under the home."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    ssl: bool = False


class MemoryConfig(Strict):
    """What Mirador remembers and how it recalls it."""

    enabled: bool = Field(default=True, description="False: nothing written, nothing recalled.")
    embedder: str = Field(default="minilm", description="minilm, sentence-transformers, ollama.")
    embedder_model: str | None = Field(
        default=None, description="A model folder (minilm, sentence-transformers) or an Ollama "
        "tag; None: the packaged all-MiniLM-L6-v2 (Ollama: all-minilm).")
    half_life_days: float = Field(default=90.0, gt=0, description="Age that halves what "
                                  "age takes off a memory's score (at most 0.04).")
    min_relevance: float = Field(
        default=0.449, ge=0.0, le=1.0, description="The context compiler gives a model only "
        "memories at least this similar in meaning to the question (search shows the top "
        "results regardless); calibrated in bench/recall.py.")
    recall_limit: int = Field(default=5, ge=1, le=50)
    token_budget: int = Field(default=600, ge=32, description="Tokens of context later stages "
                              "get, counted with their model's tokenizer.")
    recent_turns: int = Field(default=4, ge=0, description="Earlier turns of this session shown.")
    first_stage_wait: float = Field(
        default=5.0, ge=0.0, le=30.0, description="Seconds the first stage waits for recall "
        "when the question speaks of the person (my, I, we...) and a memory shares a word "
        "with it (what they told Mirador may be the answer); what is not recalled by then "
        "goes to the later stages only. 0: the first stage never waits.")
    chroma_server: ChromaServerConfig | None = Field(
        default=None, description="Use a Chroma server over HTTP instead of local files.")


class ModelsConfig(Strict):
    """The model manager: how much memory models may take and when they load or unload."""

    budget: ByteSize | None = Field(
        default=None, description="Memory all loaded models may take together, e.g. 6GB or "
        "1500MiB; None: budget_fraction of the RAM available when Mirador starts.")
    budget_fraction: float = Field(default=0.6, gt=0.0, le=1.0)
    busy_wait: float = Field(default=30.0, ge=0.0, description="Seconds a load waits for an "
                             "answer that holds the memory it needs before it fails.")
    queue_wait: float = Field(default=300.0, gt=0.0, description="Seconds a request waits "
                              "for its turn on a model busy with other answers before it "
                              "fails; this wait is not charged to the stage's timeouts.")
    keep_alive: float | None = Field(default=1800.0, gt=0.0, description="Seconds a model "
                                     "may sit idle before it is unloaded; None: never.")
    preload: bool = Field(default=True, description="Load the models a query will probably "
                          "need while it is being typed.")
    preload_debounce: float = Field(default=0.35, ge=0.0, description="Seconds of no typing "
                                    "before a partial query is used to predict.")


class LearningConfig(Strict):
    """Learning from ratings: which chain answers each query type (see mirador.learning)."""

    enabled: bool = Field(default=True, description="False: answers are neither logged nor "
                          "routed by what ratings taught.")
    fade: float = Field(default=0.99, gt=0.0, le=1.0, description="Each rating of a query "
                        "type multiplies that type's older evidence by this.")
    share: float = Field(default=0.25, ge=0.0, le=1.0, description="Weight of the evidence a "
                         "query type borrows from other types of its domain.")
    neighbours: int = Field(default=7, ge=1, le=50, description="Labelled examples that vote "
                            "on a query's domain.")
    history_min_rating: int = Field(default=4, ge=1, le=5, description="Your queries rated at "
                                    "least this teach the query-type classifier.")


class TrainingConfig(Strict):
    """`training:` in config.yaml: when `mirador serve` trains a personal adapter by itself
    (as `mirador train` does), and the deploy gate's general-set check."""

    schedule: bool = Field(default=True, description="False: adapters are trained only by "
                           "`mirador train`.")
    after_ratings: int = Field(default=20, ge=1, le=100_000, description="Train once this "
                               "many more answers were rated since the last run.")
    every_hours: float = Field(default=6.0, ge=0.5, le=24 * 365, description="At most one "
                               "scheduled run in this many hours.")
    check_every: float = Field(default=300.0, ge=1.0, le=86_400.0, description="Seconds "
                               "between looks at the ratings and the power state.")
    persona: str = Field(default="quick", min_length=1, description="The persona trained.")
    max_steps: int | None = Field(default=None, ge=1, description="Training steps of a "
                                  "scheduled run (None: the epochs decide).")
    threads: int = Field(default=1, ge=1, le=256, description="CPU threads a scheduled run "
                         "trains with (1 leaves the others to answers).")
    quality_questions: int = Field(default=6, ge=0, le=200, description="General questions "
                                   "the gate answers with and without a new adapter "
                                   "(relevance and degeneracy must not get worse); 0: off.")
    quality_tokens: int = Field(default=64, ge=8, le=1024, description="Greedy tokens per "
                                "answer in that check.")


class SpeculationConfig(Strict):
    """Speculative execution: when the learner is unsure between chains, the first stages
    of the closest candidates run at once and one is committed to (see
    mirador.orchestration.speculative_chains)."""

    enabled: bool = Field(default=False, description="True: race the close candidates' "
                          "first stages (off by default: bench/speculation.py found it did "
                          "not pay). Even then only under a profile with `speculate`, with "
                          "the cores free and a free sequence on each candidate's model.")
    margin: float = Field(default=0.05, ge=0.0, le=1.0, description="Candidates whose score "
                          "is within this of the pick's are run too (the learner's scores "
                          "are chances of a good rating, 0-1).")
    route_margin: float = Field(default=0.25, ge=0.0, description="Without a learner: the "
                                "routing is unsure when its complexity score is within this "
                                "of a threshold (simple/medium at 1, medium/complex at 3).")
    max_candidates: int = Field(default=2, ge=2, le=4, description="At most this many "
                                "first stages run at once, the pick's included.")
    commit_tokens: int = Field(default=16, ge=1, le=4096, description="The choice is made "
                               "when each candidate's first stage has this many tokens (or "
                               "has ended); until then nothing is shown.")
    max_load: float | None = Field(default=0.75, gt=0.0, description="The cores count as "
                                   "free when the 1-minute load average per core is below "
                                   "this; None: not checked.")


class SandboxConfig(Strict):
    """Limits of `run_python`, the sandbox for model-written code (mirador.tools.sandbox)."""

    timeout: float = Field(default=10.0, gt=0.0, le=600.0, description="Wall-clock seconds "
                           "before the whole sandbox is killed.")
    cpu_seconds: int = Field(default=5, ge=1, le=600, description="CPU seconds (RLIMIT_CPU).")
    memory_mb: int = Field(default=512, ge=64, le=65536, description="Address space "
                           "(RLIMIT_AS), in MiB.")
    file_size_mb: int = Field(default=16, ge=1, le=4096, description="Largest file the code "
                              "may write (RLIMIT_FSIZE), in MiB.")
    open_files: int = Field(default=64, ge=16, le=4096, description="Open descriptors "
                            "(RLIMIT_NOFILE).")
    output_bytes: int = Field(default=64_000, ge=1_000, le=10_000_000, description="Bytes "
                              "of stdout and of stderr kept; the rest is cut and said so.")
    python: str | None = Field(default=None, description="The interpreter the code runs on "
                               "(a path or a name on PATH); None: the one Mirador runs on "
                               "(its base install, not a virtualenv's packages).")
    isolation: Literal["bubblewrap", "namespaces"] = Field(
        default="bubblewrap", description="bubblewrap: filesystem, network and process "
        "isolation (refused if bwrap is not installed); namespaces: network and process "
        "namespaces, another uid and rlimits only, the host's files guarded by permissions.")


class McpServerConfig(Strict):
    """One MCP server whose tools Mirador may call: stdio (`command`) or HTTP (`url`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="Prefix of its tools.")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(default=None, description="A streamable-HTTP endpoint.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server '{self.name}' needs exactly one of 'command' "
                             "(a stdio server) or 'url' (an HTTP server)")
        if self.url is not None and (self.args or self.env):
            raise ValueError(f"MCP server '{self.name}': 'args' and 'env' are for stdio "
                             "servers (with 'command'), not for a 'url'")
        return self


class ToolsConfig(Strict):
    """`tools:` in config.yaml: how tool calls run, the sandbox's limits and MCP servers
    (which tools a persona may use is its `tools:` list in the manifest)."""

    max_rounds: int = Field(default=3, ge=1, le=20, description="Rounds of tool calls one "
                            "stage may make before it must answer.")
    sandbox: SandboxConfig = SandboxConfig()
    mcp: list[McpServerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_mcp_names(self) -> ToolsConfig:
        names = [server.name for server in self.mcp]
        if len(names) != len(set(names)):
            raise ValueError(f"tools.mcp names must be unique (got {names})")
        return self


class ConditionConfig(Strict):
    """An agent's condition: run only when a tool's numeric result compares true."""

    tool: str = Field(min_length=1, description="A registered tool's name.")
    args: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments.")
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    value: float = Field(description="What the tool's result is compared with.")


class AgentConfig(Strict):
    """An agent of `config.yaml`: a prompt answered on a trigger (see mirador.agents)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,48}$", description="Letters, digits, - or _.")
    prompt: str = Field(min_length=1, description="What the agent asks each run.")
    trigger: str = Field(description="'daily HH:MM' (local time) or 'every N' with s, m, h "
                         "or d (e.g. 'every 30m').")
    when: ConditionConfig | None = Field(default=None, description="Run only when this holds "
                                         "(checked at each trigger).")
    chain: str | None = Field(default=None, description="Answer with this chain.")
    description: str = ""


class FederationConfig(Strict):
    """`mirador federate`: improving a shared adapter with peers on Flower (opt-in)."""

    enabled: bool = Field(default=False, description="Opt in: `mirador federate` joins "
                          "only when this is true or --yes is given.")
    superlink: str = Field(default="127.0.0.1:9092", description="The SuperLink (host:port) "
                           "peers connect to and runs are submitted to; loopback by default.")
    root_certificates: str | None = Field(
        default=None, description="A PEM CA file: TLS to the SuperLink. Required for any "
        "address that is not loopback.")
    persona: str = Field(default="quick", description="Whose base model the shared adapter "
                         "is for; every peer must have the same GGUF.")
    rounds: int = Field(default=3, ge=1, le=1000)
    peers: int = Field(default=3, ge=2, le=10_000, description="Peers a round waits for and "
                       "the noise is scaled to (Flower's minimum).")
    local_steps: int = Field(default=8, ge=1, le=10_000, description="Training steps each "
                             "peer takes per round on its own examples.")
    noise_multiplier: float = Field(
        default=1.0, ge=0.0, le=100.0, description="Gaussian noise on the aggregate, in units "
        "of clipping_norm / peers; 0 turns DP off (updates are still clipped).")
    clipping_norm: float = Field(default=1.0, gt=0.0, description="Each peer's update is "
                                 "clipped to this L2 norm before it leaves.")
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0, description="The DP delta epsilon "
                         "is reported for.")
    round_timeout: float = Field(default=900.0, gt=0.0, description="Seconds a SecAgg+ "
                                 "stage waits for peers before going on without them.")


class Config(Strict):
    """The whole of `config.yaml`."""

    default_model: str = "smollm2-135m"
    backends: BackendsConfig = BackendsConfig()
    stages: list[StageConfig] = Field(default_factory=_default_stages, min_length=1)
    routing: RoutingConfig = RoutingConfig()
    color: Literal["auto", "always", "never"] = "auto"
    memory: MemoryConfig = MemoryConfig()
    server: ServerConfig = ServerConfig()
    models: ModelsConfig = ModelsConfig()
    learning: LearningConfig = LearningConfig()
    training: TrainingConfig = TrainingConfig()
    tools: ToolsConfig = ToolsConfig()
    energy: EnergyConfig = EnergyConfig()
    speculation: SpeculationConfig = SpeculationConfig()
    federation: FederationConfig = FederationConfig()
    agents: list[AgentConfig] = Field(default_factory=list, description="Agents that watch "
                                      "(disabled until `mirador agents enable NAME`).")


@dataclass(frozen=True)
class Settings:
    """Resolved settings: the home directory and the parsed config."""

    home: Path
    config: Config
    env: Mapping[str, str]

    @property
    def config_path(self) -> Path:
        return self.home / "config.yaml"

    @property
    def manifest_path(self) -> Path:
        return self.home / "manifest.yaml"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def profile_path(self) -> Path:
        """The profile pinned with `mirador profile NAME` (absent: auto)."""
        return self.home / "profile.json"

    @property
    def history_path(self) -> Path:
        return self.home / "chat_history"

    @property
    def ollama_host(self) -> str:
        return (self.config.backends.ollama.host or self.env.get("OLLAMA_HOST")
                or "http://127.0.0.1:11434")

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def load_settings(home: Path | None = None, env: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Read `config.yaml` from the home (defaults where it is absent)."""
    env = dict(os.environ if env is None else env)
    home = Path(home) if home is not None else default_home(env)
    path = home / "config.yaml"
    config = read_yaml_model(path, Config) if path.exists() else Config()
    if overrides:
        config = config.model_copy(update=overrides)
    return Settings(home=home, config=config, env=env)


def without_memory(settings: Settings) -> Settings:
    """The same settings with memory off: nothing recalled, nothing written."""
    memory = settings.config.memory.model_copy(update={"enabled": False})
    return replace(settings, config=settings.config.model_copy(update={"memory": memory}))
