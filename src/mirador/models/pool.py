"""The backends the manager runs models on: each created once, on first use, and
checked against the capabilities it declares; ones given from outside (a plugin's,
a test's) are used but closed by their owner."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mirador.backends import Backend, check_capabilities, create_backend
from mirador.settings import Settings

BackendFactory = Callable[[str, Settings], Backend]


class BackendPool:
    """Backends by name, created by `factory` the first time each is asked for."""

    def __init__(self, settings: Settings, factory: BackendFactory = create_backend) -> None:
        self.settings = settings
        self._factory = factory
        self._backends: dict[str, Backend] = {}
        self._borrowed: set[str] = set()  # given by `use`: the giver closes them

    def get(self, name: str) -> Backend:
        """The backend named `name`; BackendError if it does not keep the capabilities it
        declares."""
        if name not in self._backends:
            self._backends[name] = check_capabilities(self._factory(name, self.settings))
        return self._backends[name]

    def use(self, name: str, backend: Backend) -> None:
        """Serve `name` with this instance; its owner closes it."""
        self._backends[name] = check_capabilities(backend)
        self._borrowed.add(name)

    def __iter__(self) -> Iterator[Backend]:
        return iter(list(self._backends.values()))

    async def aclose(self) -> None:
        """Close the backends this pool created."""
        for name, backend in self._backends.items():
            if name not in self._borrowed:
                await backend.aclose()
        self._backends.clear()
