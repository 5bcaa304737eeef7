"""The sandbox against an attack corpus: every payload is blocked, names the limit that stopped it, leaks
nothing, and the pool still runs ordinary code afterwards.

Layer 1 payloads run as node code does (RestrictedPython, then the isolated process). Layer 2 payloads
run plain Python in the same isolated process (`Limits(restricted=False)`): what an escape from layer 1
would get.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
import pytest_asyncio

from actors.sandbox import Limits, SandboxPool, limits_for

SECRET = "ca-sandbox-corpus-secret-7f3a"
LOW = limits_for("low", timeout=4, cpu_seconds=1)
RAW = replace(LOW, restricted=False)

# (name, code, limits that may stop it)
LAYER_1: list[tuple[str, str, set[str]]] = [
    # CVE-2023-37271: walking a generator's frame up to the caller's globals.
    (
        "cve-2023-37271 gi_frame walk",
        "q = (q.gi_frame.f_back.f_back for _ in [1])\nresult = [x for x in q][0]",
        {"policy"},
    ),
    ("gi_frame by getattr", "g = (x for x in [1])\nresult = getattr(g, 'gi_frame')", {"policy"}),
    ("gi_code by getattr", "result = getattr(getattr((x for x in []), 'gi_code'), 'co_consts')", {"policy"}),
    ("generator f_globals", "def g():\n    yield 1\nresult = g().gi_frame.f_globals", {"policy"}),
    # CVE-2023-41039: str.format / string.Formatter reading attributes through format fields.
    ("cve-2023-41039 str.format", "result = '{0.__class__.__base__.__subclasses__}'.format(1)", {"policy"}),
    ("format attribute by getattr", "f = getattr('', 'format')\nresult = f()", {"policy"}),
    ("str.format on the type", "result = str.format('{0.__class__}', 1)", {"policy"}),
    ("format_map", "result = '{a.__class__}'.format_map({'a': 1})", {"policy"}),
    ("string.Formatter", "import string\nresult = string.Formatter().format('{0.__globals__}', len)", {"policy"}),
    ("format builtin", "result = format(1, '{0.__class__}')", {"policy"}),
    ("format reads the environment", "result = '{0.environ}'.format(inputs)", {"policy"}),
    # CVE-2024-47532 and CVE-2025-22153: try/except* leaking and confusing exception types.
    (
        "cve-2024-47532 except* leak",
        "try:\n    raise ValueError(1)\nexcept* ValueError as eg:\n    result = eg.exceptions",
        {"policy"},
    ),
    (
        "cve-2025-22153 except* confusion",
        "try:\n    1/0\nexcept* ZeroDivisionError as e:\n    e = e.exceptions[0]\n    result = e.tb_frame",
        {"policy"},
    ),
    # __subclasses__ walks and the type system.
    ("subclasses walk", "result = ().__class__.__bases__[0].__subclasses__()", {"policy"}),
    ("subclasses by getattr", "result = getattr(getattr((), '__class__'), '__mro__')", {"policy"}),
    ("mro of list", "result = [].__class__.__mro__[1].__subclasses__()", {"policy"}),
    ("object builtin", "result = object.__subclasses__()", {"policy"}),
    ("type builtin", "result = type(1)", {"policy"}),
    ("mro method", "result = int.mro()", {"policy"}),
    # Frames, code and globals.
    ("traceback frame", "try:\n    1/0\nexcept Exception as e:\n    result = e.__traceback__", {"policy"}),
    (
        "traceback by getattr",
        "try:\n    1/0\nexcept Exception as e:\n    result = getattr(e, '__traceback__')",
        {"policy"},
    ),
    ("with_traceback", "try:\n    1/0\nexcept Exception as e:\n    result = e.with_traceback(None)", {"policy"}),
    ("function globals", "def f():\n    pass\nresult = f.__globals__", {"policy"}),
    ("function code", "def f():\n    pass\nresult = getattr(f, '__code__')", {"policy"}),
    ("globals builtin", "result = list(globals())", {"policy"}),
    ("vars builtin", "result = vars()", {"policy"}),
    ("builtins name", "result = __builtins__", {"policy"}),
    ("class of the inputs", "result = inputs.__class__", {"policy"}),
    ("eval", "result = eval('1')", {"policy"}),
    ("exec", "exec('x = 1')", {"policy"}),
    ("compile", "result = compile('1', 'x', 'eval')", {"policy"}),
    # Imports.
    ("import os", "import os\nresult = os.getcwd()", {"policy"}),
    ("import subprocess", "import subprocess\nresult = subprocess.run(['id'])", {"policy"}),
    ("import ctypes", "import ctypes", {"policy"}),
    ("from os import system", "from os import system\nsystem('id')", {"policy"}),
    ("__import__", "result = __import__('os')", {"policy"}),
    ("import sys", "import sys\nresult = sys.modules", {"policy"}),
    ("import importlib", "import importlib\nresult = importlib.import_module('os')", {"policy"}),
    ("module internals", "import json\nresult = json.codecs", {"policy"}),
    ("module loader", "import math\nresult = math.__loader__", {"policy"}),
    ("module write", "import math\nmath.pi = 3", {"policy"}),
    # Files.
    ("open /etc/passwd", "result = open('/etc/passwd').read()", {"policy"}),
    ("open /proc/self/environ", "result = open('/proc/self/environ').read()", {"policy"}),
    ("with open", "with open('/etc/passwd') as f:\n    result = f.read()", {"policy"}),
    # Processes.
    ("fork bomb", "import os\nwhile True:\n    os.fork()", {"policy"}),
    # Memory.
    ("string bomb", "result = 'x' * 10**10", {"memory"}),
    ("list bomb", "result = [0] * (10**9)", {"memory"}),
    ("growing list", "a = []\nwhile True:\n    a.append('x' * 10**6)", {"memory"}),
    # CPU.
    # On a loaded machine the wall clock may come first: either limit stops the loop.
    ("cpu loop", "while True:\n    pass", {"cpu", "timeout"}),
    ("counting loop", "x = 0\nwhile True:\n    x += 1", {"cpu", "timeout"}),
    ("huge power", "result = 10**10**8", {"cpu", "timeout", "memory"}),
    ("catastrophic regex", "import re\nresult = re.match('(a+)+$', 'a' * 40 + 'b')", {"cpu", "timeout"}),
    # Recursion.
    ("deep recursion", "def f(n):\n    return f(n + 1)\nresult = f(0)", {"recursion"}),
    ("lambda recursion", "f = lambda n: f(n + 1)\nresult = f(0)", {"recursion"}),
    # Output.
    ("giant output", "result = 'x' * 5_000_000", {"output"}),
    ("giant list output", "result = list(range(2_000_000))", {"output", "memory", "cpu", "timeout"}),
    ("giant print", "for i in range(200000):\n    print('xxxxxxxxxx')\nresult = printed", {"output"}),
    # Network (imports are refused before any socket exists).
    ("socket import", "import socket\nresult = socket.socket()", {"policy"}),
]

# What plain Python would get inside the isolated process if layer 1 were escaped.
LAYER_2: list[tuple[str, str, set[str]]] = [
    ("raw /etc/passwd", "result = open('/etc/passwd').read()", {"files"}),
    ("raw /proc/self/environ", "result = open('/proc/self/environ', 'rb').read().decode()", {"files"}),
    ("raw fork", "import os\nresult = os.fork()", {"processes"}),
    ("raw fork bomb", "import os\nwhile True:\n    os.fork()", {"processes"}),
    ("raw subprocess", "import subprocess\nresult = subprocess.run(['id']).returncode", {"policy", "processes"}),
    ("raw system", "import os\nresult = os.system('id')", {"processes"}),
    ("raw ctypes", "import ctypes\nresult = ctypes.CDLL(None)", {"policy"}),
    ("raw frames", "import sys\nresult = sys._getframe().f_globals", {"policy"}),
    ("raw memory", "x = bytearray(2**31)", {"memory"}),
    ("raw cpu", "while True:\n    pass", {"cpu", "timeout"}),
    ("raw file size", "open('big', 'wb').write(b'x' * 2_000_000)", {"files"}),
    ("raw open files", "fs = [open(f'f{i}', 'w') for i in range(100)]", {"files"}),
]


@pytest.fixture(scope="module")
def secret_env() -> Iterator[None]:
    os.environ["CA_SANDBOX_TEST_SECRET"] = SECRET
    try:
        yield
    finally:
        os.environ.pop("CA_SANDBOX_TEST_SECRET", None)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool(secret_env: None) -> AsyncIterator[SandboxPool]:
    async with SandboxPool(size=1, recycle_after=100) as pool:
        await pool.start(RAW)
        yield pool


def _leaks(result: object) -> bool:
    return SECRET in json.dumps(result, default=str)


def _check_blocked(name: str, done: object, allowed: set[str]) -> None:
    from actors.sandbox import SandboxResult

    assert isinstance(done, SandboxResult)
    assert not done.ok, f"{name}: not blocked, gave {done.result!r}"
    assert done.limit in allowed, f"{name}: stopped by {done.limit} ({done.error}), expected {allowed}"
    # The message names what stopped it.
    assert (done.limit == "policy" and done.message.startswith("policy: ")) or f"SandboxLimit: {done.limit}" in (
        done.message
    )
    assert not _leaks([done.result, done.stdout, done.error])


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("name", "code", "allowed"), LAYER_1, ids=[c[0] for c in LAYER_1])
async def test_a_layer_1_payload_is_blocked_and_names_its_limit(
    pool: SandboxPool, name: str, code: str, allowed: set[str]
) -> None:
    done = await pool.run(code, {"inputs": {"x": 1}, "memory": "", "state": {}}, LOW)
    _check_blocked(name, done, allowed)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("name", "code", "allowed"), LAYER_2, ids=[c[0] for c in LAYER_2])
async def test_a_layer_2_payload_in_plain_python_is_blocked_by_the_process(
    pool: SandboxPool, name: str, code: str, allowed: set[str]
) -> None:
    done = await pool.run(code, {}, RAW)
    _check_blocked(name, done, allowed)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_socket_to_a_listening_local_port_never_connects_with_network_false(pool: SandboxPool) -> None:
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code = f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\nresult = 1"
        done = await pool.run(code, {}, RAW)
        _check_blocked("raw socket", done, {"network"})
        # The port is open from here: the refusal came from the sandbox, not from a closed port.
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        await asyncio.sleep(0.1)
        assert len(accepted) == 1
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_cpu_loop_is_stopped_by_its_cpu_seconds_when_the_wall_clock_allows_more(pool: SandboxPool) -> None:
    limits = limits_for("low", cpu_seconds=1, timeout=120)
    done = await pool.run("while True:\n    pass", {}, limits)
    _check_blocked("cpu seconds", done, {"cpu"})
    assert done.message == "SandboxLimit: cpu (CPU time limit reached)"


@pytest.mark.asyncio(loop_scope="module")
async def test_the_sandbox_process_inherits_no_environment(pool: SandboxPool) -> None:
    done = await pool.run("import os\nresult = dict(os.environ)", {}, RAW)
    assert done.ok, done.message
    assert not _leaks(done.result)
    assert SECRET not in str(done.result)


@pytest.mark.asyncio(loop_scope="module")
async def test_after_the_corpus_the_pool_still_runs_ordinary_code(pool: SandboxPool) -> None:
    code = (
        "import math\ntotal = 0\nfor n in inputs['xs']:\n    total += n\n"
        "result = {'total': total, 'root': math.sqrt(total)}"
    )
    done = await pool.run(code, {"inputs": {"xs": [4, 5, 7]}}, LOW)
    assert done.ok, done.message
    assert done.result == {"total": 16, "root": 4.0}
    stats = pool.stats()
    assert stats.busy == 0
    assert stats.recycled > 0  # workers that hit a limit were replaced
    assert stats.network in ("netns", "audit")


def test_the_corpus_has_at_least_forty_payloads() -> None:
    assert len(LAYER_1) + len(LAYER_2) >= 40
    assert len({name for name, _, _ in LAYER_1 + LAYER_2}) == len(LAYER_1) + len(LAYER_2)


def test_limits_are_per_process_profiles() -> None:
    assert Limits().profile() != RAW.profile()
