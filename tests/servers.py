"""Real Elasticsearch / OpenSearch nodes for the tests, from the integration-test zips on Maven Central.

A distribution is fetched once with Maven (``mvn dependency:get``) into the local Maven repository,
unpacked into ``~/.cache/esrank/test-servers/`` (``ESRANK_TEST_SERVER_CACHE`` overrides), and run
with the machine's Java on a free loopback port with a throw-away data directory. OpenSearch gets
the ``analysis-common`` and ``mapper-extras`` modules (jars on Maven Central) so the English analyzer and
``rank_features`` exist there; the
Elasticsearch integ-test zip has no such module and exercises esrank's analyzer fallback.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path


SERVER_TEST_TIMEOUT = 600  # seconds per server test (tests/conftest.py): a hung server fails its test, not the run


@dataclass(frozen=True)
class Distribution:
    """A server distribution on Maven Central."""

    kind: str  # "elasticsearch" or "opensearch"
    group: str
    version: str
    extra_modules: tuple[tuple[str, str, str, str], ...] = ()  # (group, artifact, module dir, plugin class)

    @property
    def artifact(self) -> str:
        return f"{self.group}:{self.kind}:{self.version}:zip"


ELASTICSEARCH = Distribution("elasticsearch", "org.elasticsearch.distribution.integ-test-zip",
                             os.environ.get("ESRANK_TEST_ES_VERSION", "8.19.7"))
OPENSEARCH = Distribution(
    "opensearch", "org.opensearch.distribution.integ-test-zip", os.environ.get("ESRANK_TEST_OS_VERSION", "2.19.6"),
    extra_modules=(("org.opensearch.plugin", "analysis-common", "analysis-common",
                    "org.opensearch.analysis.common.CommonAnalysisPlugin"),
                   ("org.opensearch.plugin", "mapper-extras-client", "mapper-extras",
                    "org.opensearch.index.mapper.MapperExtrasPlugin")),
)


class ServerUnavailable(RuntimeError):
    """The server could not be fetched or started."""


def cache_dir() -> Path:
    """Where unpacked distributions live (outside the repository; world-readable when running as root)."""
    if os.environ.get("ESRANK_TEST_SERVER_CACHE"):
        return Path(os.environ["ESRANK_TEST_SERVER_CACHE"])
    if os.geteuid() == 0:  # the server runs as an unprivileged user who cannot read root's home
        return Path(tempfile.gettempdir()) / "esrank-test-servers"
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "esrank" / "test-servers"


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to drop to: the servers refuse to run as root (``ESRANK_TEST_SERVER_USER``, default nobody)."""
    if os.geteuid() != 0:
        return None
    import pwd

    pw = pwd.getpwnam(os.environ.get("ESRANK_TEST_SERVER_USER", "nobody"))
    return pw.pw_uid, pw.pw_gid


def _m2_path(group: str, artifact: str, version: str, ext: str) -> Path:
    repo = Path(os.environ.get("ESRANK_TEST_M2_REPO") or os.path.expanduser("~/.m2/repository"))
    return repo / group.replace(".", "/") / artifact / version / f"{artifact}-{version}.{ext}"


def fetch(group: str, artifact: str, version: str, ext: str) -> Path:
    """The artifact file in the local Maven repository, downloaded with ``mvn`` when missing."""
    path = _m2_path(group, artifact, version, ext)
    if path.exists():
        return path
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerUnavailable(f"{artifact} {version} is not in ~/.m2 and Maven (mvn) is not installed")
    cmd = [mvn, "-q", "-B", "dependency:get", f"-Dartifact={group}:{artifact}:{version}:{ext}",
           "-Dtransitive=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not path.exists():
        raise ServerUnavailable(f"mvn could not fetch {group}:{artifact}:{version}:{ext}: "
                                f"{(proc.stdout + proc.stderr)[-2000:]}")
    return path


def install(dist: Distribution) -> Path:
    """Unpack a distribution (and its extra modules) into the cache; returns its home directory."""
    # the set of extra modules is part of the name: a changed set unpacks anew, beside running servers
    extras = "".join(f"+{m}" for _, _, m, _ in dist.extra_modules if m != "analysis-common")
    home = cache_dir() / f"{dist.kind}-{dist.version}{extras}"
    marker = home / ".esrank-ready"
    if marker.exists():
        return home
    archive = fetch(dist.group, dist.kind, dist.version, "zip")
    tmp = Path(tempfile.mkdtemp(prefix=f"{dist.kind}-", dir=_ensure(cache_dir())))
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp)
    top = next(p for p in tmp.iterdir() if p.is_dir())
    for p in (top / "bin").iterdir():
        p.chmod(0o755)
    for group, artifact, module, cls in dist.extra_modules:
        jar = fetch(group, artifact, dist.version, "jar")
        mdir = top / "modules" / module
        mdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(jar, mdir / jar.name)
        (mdir / "plugin-descriptor.properties").write_text(
            f"description={artifact}\nversion={dist.version}\nname={module}\nclassname={cls}\n"
            f"java.version=11\nopensearch.version={dist.version}\ncustom.foldername=\nextended.plugins=\n"
            "has.native.controller=false\n")
    (top / ".esrank-ready").write_text("ok\n")
    if home.exists():
        shutil.rmtree(home)
    top.rename(home)
    shutil.rmtree(tmp, ignore_errors=True)
    return home


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _java_home() -> str:
    for var in ("ESRANK_TEST_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            return os.environ[var]
    java = shutil.which("java")
    if java is None:
        raise ServerUnavailable("no Java found (set JAVA_HOME)")
    return str(Path(os.path.realpath(java)).parent.parent)


class Server:
    """One single-node server process; can be killed and restarted on the same port and data."""

    def __init__(self, dist: Distribution, heap: str = "512m") -> None:
        self.dist = dist
        self.heap = heap
        self.home = install(dist)
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"esrank-{dist.kind}-"))
        shutil.copytree(self.home / "config", self.workdir / "config")
        jvm = self.workdir / "config" / "jvm.options"  # GC log and heap dumps: into this node's directory
        jvm.write_text(jvm.read_text().replace("file=logs/", f"file={self.workdir}/logs/")
                       .replace("HeapDumpPath=data", f"HeapDumpPath={self.workdir}/data"))
        for sub in ("data", "logs"):
            (self.workdir / sub).mkdir()
        self.user = _run_as()
        if self.user is not None:
            for p in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(p, *self.user)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        k = self.dist.kind
        settings = {
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.port),
            "transport.port": str(free_port()),
            "path.data": str(self.workdir / "data"),
            "path.logs": str(self.workdir / "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "cluster.name": f"esrank-test-{k}",
        }
        env = dict(os.environ)
        opts = f"-Xms{self.heap} -Xmx{self.heap} -XX:-UsePerfData"
        java_home = _java_home()
        if k == "elasticsearch":
            settings["xpack.security.enabled"] = "false"
            env["ES_JAVA_OPTS"] = opts
            env["ES_JAVA_HOME"] = java_home
        else:
            env["OPENSEARCH_JAVA_OPTS"] = opts
            env["OPENSEARCH_JAVA_HOME"] = java_home
        env["JAVA_HOME"] = java_home
        env["ES_PATH_CONF" if k == "elasticsearch" else "OPENSEARCH_PATH_CONF"] = str(self.workdir / "config")
        env["HOME"] = str(self.workdir)
        cmd = [str(self.home / "bin" / k)] + [f"-E{key}={v}" for key, v in settings.items()]
        if self.user is not None:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise ServerUnavailable("running as root needs setpriv to start the server as another user")
            cmd = [setpriv, f"--reuid={self.user[0]}", f"--regid={self.user[1]}", "--clear-groups", *cmd]
        return cmd, env

    def start(self, timeout: float = 180.0) -> "Server":
        """Start the process and wait until the cluster is at least yellow."""
        cmd, env = self._command()
        log = open(self.workdir / "logs" / "console.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.workdir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"{self.dist.kind} exited with {self.proc.returncode}: {self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise ServerUnavailable(f"{self.dist.kind} not healthy after {timeout:.0f}s: {self.log_tail()}")

    def healthy(self) -> bool:
        """Whether the node answers and its cluster is yellow or green."""
        try:
            with urllib.request.urlopen(f"{self.url}/_cluster/health", timeout=2) as r:
                return json.load(r).get("status") in ("yellow", "green")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def log_tail(self, n: int = 3000) -> str:
        """The end of the server's console output."""
        try:
            return (self.workdir / "logs" / "console.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Kill the node at once (SIGKILL), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        """Stop the node gracefully (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self.proc = None

    def cleanup(self) -> None:
        """Stop the node and delete its data."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
