#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests in deploy/kubernetes (DESIGN section 7).

1. Every object is validated against the Kubernetes OpenAPI schemas bundled with
   `kubernetes-validate`, in strict mode (an unknown or misspelt field fails), for the oldest
   Kubernetes version the manifests support and for the newest one the pinned package ships.
2. The manifests agree with each other and with the process contract: the topology in the
   ConfigMap parses as TOML and names exactly the StatefulSet's pods, at their DNS names, with
   the drive paths the pods mount; probes, Services and listen addresses use the right ports;
   secrets referenced exist; kustomization.yaml lists every manifest but secrets.yaml.

Needs no cluster and no network. Prints one line per check, then "N passed, N failed", and
exits non-zero when any check failed.

    python3 -m venv /tmp/deploy-venv
    /tmp/deploy-venv/bin/pip install -r tests/deploy/requirements.txt
    /tmp/deploy-venv/bin/python tests/deploy/validate_k8s.py [MANIFEST_DIR]
"""

import ipaddress
import math
import pathlib
import shutil
import subprocess
import sys
import uuid

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

import kubernetes_validate
import yaml

# The oldest Kubernetes the manifests are written for (the gateways' preStop `sleep` action is
# 1.30), and the newest whose schemas the pinned kubernetes-validate bundles.
OLDEST_KUBERNETES = "1.30"
NEWEST_KUBERNETES = ".".join(kubernetes_validate.latest_version().split(".")[:2])
KUBERNETES_VERSIONS = sorted({OLDEST_KUBERNETES, NEWEST_KUBERNETES})

# The process contract (README, DESIGN section 6).
RPC_PORT, S3_PORT, ADMIN_PORT = 9100, 9000, 9001
IMAGE_UID = 10001
# The keys src/cluster/topology.rs accepts (it denies unknown fields: a process given any other
# key refuses to start).
TOPOLOGY_KEYS = {"deployment_id", "ec", "stripe_size", "inline_limit", "upload_expiry",
                 "cluster_secret_file", "nodes", "node", "gateway"}
NODES_KEYS = {"name", "address", "drives"}
NODE_KEYS = {"listen"}
GATEWAY_KEYS = {"address", "admin_address", "region", "base_domain"}
CLUSTER_DOMAIN = "cluster.local"
SECRETS_FILE = "secrets.yaml"
KUSTOMIZATION = "kustomization.yaml"

REPO = pathlib.Path(__file__).resolve().parents[2]


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, what, fn):
        """Runs fn, which returns None when the check holds and a description of the problem
        when it does not; an exception (a missing field, say) is a failure too."""
        try:
            problem = fn()
        except Exception as e:  # a malformed manifest must fail the check, not the script
            problem = f"{type(e).__name__}: {e}"
        if problem:
            self.failed += 1
            print(f"FAIL {what}: {problem}")
        else:
            self.passed += 1
            print(f"PASS {what}")


def load(directory, checks):
    """Returns {file name: [objects]} for every *.yaml in directory."""
    files = {}
    for path in sorted(directory.glob("*.yaml")):
        def parse(path=path):
            files[path.name] = [d for d in yaml.safe_load_all(path.read_text()) if d]
            if not files[path.name]:
                return "no objects"
        checks.check(f"parse {path.name}", parse)
    return files


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def only(objs, kind, what=None):
    found = [o for o in objs if o.get("kind") == kind
             and (what is None or o["metadata"]["name"] == what)]
    if len(found) != 1:
        raise LookupError(f"expected one {kind}{'/' + what if what else ''}, found {len(found)}")
    return found[0]


def container_of(workload):
    containers = workload["spec"]["template"]["spec"]["containers"]
    if len(containers) != 1:
        raise LookupError(f"{name_of(workload)}: expected one container, found {len(containers)}")
    return containers[0]


def port_number(container, port):
    """A probe's or Service's target port as a number, resolving a named port."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise LookupError(f"no container port named {port!r}")


def container_port(container, number):
    return any(p["containerPort"] == number for p in container.get("ports", []))


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def split_address(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def env_var(container, name):
    for e in container.get("env", []):
        if e["name"] == name:
            return e
    return None


def check_schemas(files, checks):
    for file, objs in files.items():
        if file == KUSTOMIZATION:
            continue
        for obj in objs:
            for version in KUBERNETES_VERSIONS:
                def validate(obj=obj, version=version):
                    try:
                        kubernetes_validate.validate(obj, version, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        path = ".".join(str(p) for p in e.path) or "(top)"
                        return f"{path}: {e.message}"
                    except kubernetes_validate.SchemaNotFoundError as e:
                        return e.message
                checks.check(f"schema k8s {version} strict: {file} {name_of(obj)}", validate)


def check_kustomization(directory, files, checks):
    kustomization = files.get(KUSTOMIZATION, [{}])[0]
    resources = kustomization.get("resources", [])
    manifests = sorted(f for f in files if f != KUSTOMIZATION)

    def header():
        if kustomization.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or \
                kustomization.get("kind") != "Kustomization":
            return "not a kustomize.config.k8s.io/v1beta1 Kustomization"
    checks.check(f"{KUSTOMIZATION} is a Kustomization", header)

    def listed():
        missing = [f for f in resources if not (directory / f).is_file()]
        if missing:
            return f"resources that do not exist: {missing}"
        unlisted = [f for f in manifests if f != SECRETS_FILE and f not in resources]
        if unlisted:
            return f"manifests not in resources: {unlisted}"
        if SECRETS_FILE in resources:
            return f"{SECRETS_FILE} must not be applied with -k (its placeholders would " \
                   "overwrite real secrets)"
    checks.check(f"{KUSTOMIZATION} lists every manifest but {SECRETS_FILE}", listed)

    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("SKIP kubectl kustomize renders the listed objects: no kubectl on PATH")
        return

    def renders():
        out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            return out.stderr.strip()
        rendered = sorted(name_of(o) for o in yaml.safe_load_all(out.stdout) if o)
        expected = sorted(name_of(o) for f in resources for o in files.get(f, []))
        if rendered != expected:
            return f"rendered {rendered}, expected {expected}"
    checks.check("kubectl kustomize renders the listed objects", renders)


def check_consistency(files, checks):
    objs = [o for f, list_ in files.items() if f != KUSTOMIZATION for o in list_]
    secrets = files.get(SECRETS_FILE, [])
    # Each part is looked up inside the check that needs it, so a missing object fails those
    # checks (with the reason) instead of stopping the script.
    namespace = lambda: only(objs, "Namespace")["metadata"]["name"]
    sts = lambda: only(objs, "StatefulSet")
    gateway = lambda: only(objs, "Deployment")
    node_c = lambda: container_of(sts())
    gw_c = lambda: container_of(gateway())
    node_labels = lambda: sts()["spec"]["template"]["metadata"]["labels"]
    gw_labels = lambda: gateway()["spec"]["template"]["metadata"]["labels"]

    def config_of(workload):
        """The cluster.toml that workload's --config names, from the ConfigMap it mounts."""
        c = container_of(workload)
        args = c.get("args", [])
        path = args[args.index("--config") + 1]
        for v in workload["spec"]["template"]["spec"].get("volumes", []):
            mount = next((m for m in c.get("volumeMounts", []) if m["name"] == v["name"]), None)
            if "configMap" not in v or mount is None:
                continue
            prefix = mount["mountPath"].rstrip("/") + "/"
            if not path.startswith(prefix):
                continue
            items = {i["path"]: i["key"] for i in v["configMap"].get("items", [])}
            key = items[path[len(prefix):]] if items else path[len(prefix):]
            cm = only(objs, "ConfigMap", v["configMap"]["name"])
            return key, cm["data"][key]
        raise LookupError(f"{name_of(workload)}: --config {path} is not in a ConfigMap volume")

    # -- every namespaced object in the Namespace (the topology's DNS names contain it)
    def namespaced():
        ns = namespace()
        wrong = [name_of(o) for o in objs
                 if o["kind"] != "Namespace" and o["metadata"].get("namespace") != ns]
        if wrong:
            return f"not in namespace {ns}: {wrong}"
    checks.check("every object is in the tessera Namespace", namespaced)

    # -- the topology
    def topology_of(workload):
        _, text = config_of(workload)
        return tomllib.loads(text)

    def same_config():
        if config_of(sts()) != config_of(gateway()):
            return "nodes and gateways read different files"
    checks.check("nodes and gateways read the same cluster.toml (mounted ConfigMap)", same_config)

    def toml_parses():
        topo = topology_of(sts())
        uuid.UUID(topo["deployment_id"])
        k, m = (int(x) for x in topo["ec"].split("+"))
        if k < 1 or m < 1:
            return f"bad ec {topo['ec']!r}"
    checks.check("cluster.toml parses as TOML, with a UUID deployment_id and ec K+M",
                 toml_parses)

    def known_keys():
        topo = topology_of(sts())
        unknown = sorted(set(topo) - TOPOLOGY_KEYS)
        unknown += [f"[node].{k}" for k in set(topo.get("node", {})) - NODE_KEYS]
        unknown += [f"[gateway].{k}" for k in set(topo.get("gateway", {})) - GATEWAY_KEYS]
        unknown += sorted({f"[[nodes]].{k}" for n in topo["nodes"] for k in set(n) - NODES_KEYS})
        if unknown:
            return f"keys the topology parser refuses: {unknown}"
    checks.check("cluster.toml has only keys the topology parser knows", known_keys)

    def node_names():
        topo, s = topology_of(sts()), sts()
        names = [n["name"] for n in topo["nodes"]]
        pods = [f"{s['metadata']['name']}-{i}" for i in range(s["spec"]["replicas"])]
        if names != pods:
            return f"[[nodes]] names {names} != StatefulSet pods {pods}"
    checks.check("cluster.toml lists exactly the StatefulSet's pods, by name", node_names)

    def node_addresses():
        topo, s = topology_of(sts()), sts()
        service = s["spec"]["serviceName"]
        bad = [n["address"] for n in topo["nodes"] if n["address"] !=
               f"{n['name']}.{service}.{namespace()}.svc.{CLUSTER_DOMAIN}:{RPC_PORT}"]
        if bad:
            return f"not POD.{service}.{namespace()}.svc.{CLUSTER_DOMAIN}:{RPC_PORT}: {bad}"
    checks.check("node addresses are the pods' DNS names under the headless Service, port 9100",
                 node_addresses)

    def node_drives():
        topo, c = topology_of(sts()), node_c()
        templates = [t["metadata"]["name"] for t in sts()["spec"]["volumeClaimTemplates"]]
        mounts = {}
        for m in c["volumeMounts"]:
            if m["name"] in templates:
                mounts.setdefault(m["name"], []).append(m["mountPath"])
        if any(len(p) != 1 for p in mounts.values()) or set(mounts) != set(templates):
            return f"each volumeClaimTemplate {templates} must be mounted once: {mounts}"
        paths = sorted(p[0] for p in mounts.values())
        bad = {n["name"]: n["drives"] for n in topo["nodes"]
               if sorted(n["drives"]) != paths or len(set(n["drives"])) != len(n["drives"])}
        if bad:
            return f"drives differ from the volume mounts {paths}: {bad}"
    checks.check("every node's drives are exactly the volumeClaimTemplate mount paths",
                 node_drives)

    def erasure_layout():
        topo = topology_of(sts())
        k, m = (int(x) for x in topo["ec"].split("+"))
        drives = [len(n["drives"]) for n in topo["nodes"]]
        if sum(drives) % (k + m):
            return f"{sum(drives)} drives do not make whole sets of {k + m}"
        per_node = math.ceil((k + m) / len(drives))
        if per_node > m:
            return f"{len(drives)} nodes put {per_node} drives of a set on one node (> m={m})"
    checks.check("drives make whole erasure sets, at most m drives of a set per node",
                 erasure_layout)

    def listen_ports():
        topo = topology_of(sts())
        wanted = [("[node] listen", topo["node"]["listen"], node_c(), RPC_PORT),
                  ("[gateway] address", topo["gateway"]["address"], gw_c(), S3_PORT),
                  ("[gateway] admin_address", topo["gateway"]["admin_address"], gw_c(),
                   ADMIN_PORT)]
        for key, address, container, port in wanted:
            host, number = split_address(address)
            if not ipaddress.ip_address(host).is_unspecified:
                return f"{key} {address} must listen on all interfaces inside a pod"
            if number != port or not container_port(container, port):
                return f"{key} {address}: expected port {port}, exposed as a containerPort"
    checks.check("listen addresses are 0.0.0.0 on 9100 / 9000 / 9001, declared as ports",
                 listen_ports)

    # -- the node StatefulSet
    def parallel():
        if sts()["spec"].get("podManagementPolicy") != "Parallel":
            return "podManagementPolicy must be Parallel (nodes become Ready only together)"
    checks.check("StatefulSet podManagementPolicy is Parallel", parallel)

    def node_name_env():
        c = node_c()
        e = env_var(c, "TESSERA_NODE_NAME")
        if not e or e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != \
                "metadata.name":
            return "TESSERA_NODE_NAME must come from fieldRef metadata.name"
        args = c.get("args", [])
        if not args or args[0] != "node":
            return f"args must start with 'node': {args}"
        if "--name" in args and args[args.index("--name") + 1] != "$(TESSERA_NODE_NAME)":
            return "--name must be $(TESSERA_NODE_NAME)"
    checks.check("node: args 'node ...', name from the pod name (TESSERA_NODE_NAME)",
                 node_name_env)

    def headless_service():
        s = sts()
        svc = only(objs, "Service", s["spec"]["serviceName"])
        spec = svc["spec"]
        if spec.get("clusterIP") != "None":
            return "must be headless (clusterIP: None)"
        if spec.get("publishNotReadyAddresses") is not True:
            return "publishNotReadyAddresses must be true (peers resolve before Ready)"
        if not selects(spec["selector"], node_labels()):
            return "selector does not match the node pods"
        if [(p["port"], port_number(node_c(), p.get("targetPort", p["port"])))
                for p in spec["ports"]] != [(RPC_PORT, RPC_PORT)]:
            return f"ports must be {RPC_PORT} -> {RPC_PORT}"
    checks.check("headless Service tessera-node selects the node pods on 9100", headless_service)

    # -- the gateway Deployment
    def gateway_args():
        args = gw_c().get("args", [])
        if not args or args[0] != "gateway":
            return f"args must start with 'gateway': {args}"
        stateful = [v["name"] for v in gateway()["spec"]["template"]["spec"].get("volumes", [])
                    if "configMap" not in v and "secret" not in v]
        if stateful:
            return f"gateways are stateless, but mount {stateful}"
    checks.check("gateway: args 'gateway ...', no data volume", gateway_args)

    for svc_name, port, target in (("tessera-s3", S3_PORT, S3_PORT),
                                   ("tessera-admin", ADMIN_PORT, ADMIN_PORT)):
        def gateway_service(svc_name=svc_name, port=port, target=target):
            spec = only(objs, "Service", svc_name)["spec"]
            if not selects(spec["selector"], gw_labels()):
                return "selector does not match the gateway pods"
            if selects(spec["selector"], node_labels()):
                return "selector also matches the node pods"
            got = [(p["port"], port_number(gw_c(), p.get("targetPort", p["port"])))
                   for p in spec["ports"]]
            if got != [(port, target)]:
                return f"ports {got}, expected [({port}, {target})]"
        checks.check(f"Service {svc_name} selects the gateways on {port}", gateway_service)

    # -- probes
    probes = [("node", node_c, "readinessProbe", "/health/ready", RPC_PORT),
              ("node", node_c, "livenessProbe", "/health/live", RPC_PORT),
              ("node", node_c, "startupProbe", "/health/live", RPC_PORT),
              ("gateway", gw_c, "readinessProbe", "/health/ready", ADMIN_PORT),
              ("gateway", gw_c, "livenessProbe", "/health/live", ADMIN_PORT)]
    for who, container, probe, path, port in probes:
        def probe_check(container=container, probe=probe, path=path, port=port):
            c = container()
            if probe == "startupProbe" and probe not in c:
                return None  # optional
            get = c[probe]["httpGet"]
            got = (get["path"], port_number(c, get["port"]))
            if got != (path, port):
                return f"GET {got[0]} on {got[1]}, expected GET {path} on {port}"
        checks.check(f"{who} {probe}: GET {path} on port {port}", probe_check)

    # -- secrets, security, placement
    required_env = [("node", sts, ["TESSERA_CLUSTER_SECRET"]),
                    ("gateway", gateway, ["TESSERA_CLUSTER_SECRET", "TESSERA_ROOT_ACCESS_KEY",
                                          "TESSERA_ROOT_SECRET_KEY"])]
    for who, workload, names in required_env:
        def secret_refs(workload=workload, names=names):
            c = container_of(workload())
            defined = {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {}))
                       for s in secrets if s["kind"] == "Secret"}
            for name in names:
                e = env_var(c, name)
                if not e or "secretKeyRef" not in e.get("valueFrom", {}):
                    return f"{name} must come from a Secret (secretKeyRef)"
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in defined.get(ref["name"], set()):
                    return f"{e['name']}: secret {ref['name']} key {ref['key']} is not " \
                           f"defined in {SECRETS_FILE}"
        checks.check(f"{who}: {', '.join(names)} from Secrets defined in {SECRETS_FILE}",
                     secret_refs)

    for who, workload in (("node", sts), ("gateway", gateway)):
        def security(workload=workload):
            ctx = workload()["spec"]["template"]["spec"].get("securityContext", {})
            if ctx.get("runAsUser") != IMAGE_UID or ctx.get("fsGroup") != IMAGE_UID:
                return f"runAsUser and fsGroup must be {IMAGE_UID}: {ctx}"
        checks.check(f"{who}: runAsUser and fsGroup {IMAGE_UID}", security)

    def anti_affinity():
        terms = sts()["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"]
        if not any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname" and
                   selects(t["podAffinityTerm"]["labelSelector"]["matchLabels"], node_labels())
                   for t in terms):
            return "no preferred anti-affinity of node pods on kubernetes.io/hostname"
    checks.check("node pods prefer one per Kubernetes node (anti-affinity)", anti_affinity)

    def one_image():
        images = {node_c()["image"], gw_c()["image"]}
        if len(images) != 1:
            return f"nodes and gateways run different images: {images}"
    checks.check("nodes and gateways run the same image", one_image)

    def budgets():
        for pdb in (o for o in objs if o["kind"] == "PodDisruptionBudget"):
            selector = pdb["spec"]["selector"]["matchLabels"]
            if not (selects(selector, node_labels()) or selects(selector, gw_labels())):
                return f"{name_of(pdb)} selects no Tessera pods"
    checks.check("PodDisruptionBudgets select the node or gateway pods", budgets)


def main():
    directory = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "deploy/kubernetes"
    print(f"validating {directory} (kubernetes-validate {kubernetes_validate.__version__}, "
          f"Kubernetes {', '.join(KUBERNETES_VERSIONS)}, strict)")
    checks = Checks()
    files = load(directory, checks)
    check_schemas(files, checks)
    check_kustomization(directory, files, checks)
    check_consistency(files, checks)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
