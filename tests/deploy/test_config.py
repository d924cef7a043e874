"""The deployment files, checked without deploying: each against its platform's published
schema (tests/deploy/schemas/), then for what this project relies on — the same commands as
the Procfile, the migration before the new code runs, health and readiness checks on the
right ports, and platform grace periods longer than our own drain timeouts (the defaults in
.env.example, or the value the file sets)."""

import json
import pathlib
import re
import tomllib
import unittest

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def validate(document, schema_name: str):
    # All three are draft-07 (compose-spec's `$schema` URL lacks the `#` that names it).
    validator = jsonschema.Draft7Validator(schema(schema_name))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors]


def seconds(value) -> float:
    """`30s`, `5m`, `1h`, `250ms` or a bare number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(value).strip())
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    number, unit = int(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def env_example() -> dict:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"([A-Z][A-Z0-9_]+)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def procfile() -> dict:
    roles = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if ":" in line and not line.startswith("#"):
            role, command = line.split(":", 1)
            roles[role.strip()] = command.strip()
    return roles


def drain_timeouts(overrides: dict) -> dict:
    """How long each process drains after SIGTERM, given the variables a file sets."""
    defaults = env_example()
    return {
        name: seconds(overrides.get(name, defaults[name]))
        for name in ("SHUTDOWN_TIMEOUT", "WORKER_SHUTDOWN_TIMEOUT")
    }


class Fly(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.config = tomllib.loads((ROOT / "fly.toml").read_text())
        cls.env = cls.config.get("env", {})

    def test_matches_the_published_schema(self):
        self.assertEqual(validate(self.config, "fly.schema.json"), [])

    def test_runs_the_procfile_roles_and_migrates_first(self):
        roles = procfile()
        self.assertEqual(self.config["processes"], {"web": roles["web"], "worker": roles["worker"]})
        self.assertEqual(self.config["deploy"]["release_command"], roles["release"])

    def test_waits_longer_than_either_process_drains(self):
        self.assertEqual(self.config["kill_signal"], "SIGTERM")
        kill_timeout = seconds(self.config["kill_timeout"])
        self.assertLessEqual(kill_timeout, 300, "Fly's maximum")
        for name, drain in drain_timeouts(self.env).items():
            self.assertGreater(kill_timeout, drain, name)

    def test_traffic_goes_to_ready_web_machines(self):
        service = self.config["http_service"]
        self.assertEqual(service["processes"], ["web"])
        self.assertEqual(service["internal_port"], int(self.env["PORT"]))
        self.assertIn("/ready", [check["path"] for check in service["checks"]])

    def test_each_group_has_a_liveness_check_on_its_own_port(self):
        checks = self.config["checks"]
        known = {"type", "port", "path", "method", "interval", "timeout", "grace_period",
                 "processes", "headers", "protocol", "tls_skip_verify", "tls_server_name"}
        for name, check in checks.items():
            self.assertLessEqual(set(check), known, name)
            self.assertIn(check["type"], {"http", "tcp"}, name)
            for duration in ("interval", "timeout", "grace_period"):
                seconds(check.get(duration, "1s"))
        api_port = int(self.env["PORT"])
        worker_port = int(self.env.get("WORKER_PORT", api_port))
        by_group = {tuple(c["processes"]): c for c in checks.values()}
        for group, port in ((("web",), api_port), (("worker",), worker_port)):
            check = by_group[group]
            self.assertEqual((check["type"], check["path"], check["port"]),
                             ("http", "/health", port), group)

    def test_both_groups_have_machines_sized(self):
        sized = {group for vm in self.config["vm"] for group in vm["processes"]}
        self.assertEqual(sized, {"web", "worker"})


class Railway(unittest.TestCase):
    ROLES = {"api": ("web", "/ready"), "worker": ("worker", "/health")}

    def config(self, role: str) -> dict:
        return json.loads((ROOT / "railway" / f"{role}.json").read_text())

    def test_match_the_published_schema(self):
        for role in self.ROLES:
            with self.subTest(role):
                self.assertEqual(validate(self.config(role), "railway.schema.json"), [])

    def test_each_service_runs_its_role_after_the_migration(self):
        roles = procfile()
        for role, (procfile_role, health) in self.ROLES.items():
            with self.subTest(role):
                deploy = self.config(role)["deploy"]
                self.assertEqual(deploy["startCommand"], roles[procfile_role])
                self.assertEqual(deploy["preDeployCommand"], [roles["release"]])
                self.assertEqual(deploy["healthcheckPath"], health)

    def test_old_deployments_drain_longer_than_our_timeouts(self):
        for role in self.ROLES:
            with self.subTest(role):
                draining = self.config(role)["deploy"]["drainingSeconds"]
                for name, drain in drain_timeouts({}).items():
                    self.assertGreater(draining, drain, name)

    def test_build_from_the_dockerfile(self):
        for role in self.ROLES:
            with self.subTest(role):
                build = self.config(role)["build"]
                self.assertEqual(build["builder"], "DOCKERFILE")
                self.assertTrue((ROOT / build["dockerfilePath"]).is_file())


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (`!reset`, `!override`)."""


for tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(
        tag,
        lambda loader, node: (loader.construct_sequence(node)
                              if isinstance(node, yaml.SequenceNode)
                              else loader.construct_mapping(node)
                              if isinstance(node, yaml.MappingNode)
                              else loader.construct_scalar(node)))


class Compose(unittest.TestCase):
    FILES = ("docker-compose.yml", "docker-compose.production.yml")

    def load(self, name: str) -> dict:
        return yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)

    def test_match_the_compose_specification(self):
        for name in self.FILES:
            with self.subTest(name):
                self.assertEqual(validate(self.load(name), "compose-spec.schema.json"), [])

    def test_stopping_waits_longer_than_our_processes_drain(self):
        services = self.load("docker-compose.yml")["services"]
        for name in ("api", "worker"):
            grace = seconds(services[name]["stop_grace_period"])
            for variable, drain in drain_timeouts({}).items():
                self.assertGreater(grace, drain, f"{name} {variable}")

    def test_the_server_itself_receives_sigterm(self):
        for name in self.FILES:
            for service, spec in self.load(name)["services"].items():
                command = spec.get("command") or []
                if command[:2] == ["sh", "-c"]:
                    self.assertIn("exec cart-", command[2], f"{name} {service}")

    def test_production_serves_without_the_demo_catalog(self):
        api = self.load("docker-compose.production.yml")["services"]["api"]
        self.assertEqual(api["command"], ["cart-api", "serve"])


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
        lines = [line.strip() for line in text.splitlines()]
        last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
        cls.runtime = [line for line in lines[last_from:] if line and not line.startswith("#")]

    def instructions(self, keyword: str) -> list[str]:
        return [line[len(keyword):].strip() for line in self.runtime
                if line.upper().startswith(keyword + " ")]

    def test_runs_as_an_unprivileged_user(self):
        users = self.instructions("USER")
        self.assertTrue(users, "the runtime stage sets a USER")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, {"root", "0"})

    def test_has_a_health_check_on_health(self):
        checks = self.instructions("HEALTHCHECK")
        self.assertEqual(len(checks), 1)
        self.assertIn("/health", checks[0])
        self.assertIn("${PORT", checks[0])

    def test_leaves_the_worker_port_to_the_platform(self):
        env = " ".join(self.instructions("ENV"))
        self.assertNotIn("WORKER_PORT", env, "a baked-in WORKER_PORT would hide the platform's PORT")


if __name__ == "__main__":
    unittest.main()
