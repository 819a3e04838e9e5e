#!/usr/bin/env python3
"""Offline checks of a rendered kustomize overlay (deploy/ci-check.sh runs this).

    check_manifests.py OVERLAY_NAME RENDERED.yaml CONFIG_OUT.toml

Checks, for every pod template:
  * the Restricted Pod Security Standard (Kubernetes' pod-security admission, level
    "restricted"): no host namespaces, ports or hostPath volumes, only the allowed volume types,
    not privileged, allowPrivilegeEscalation false, capabilities drop ALL (add at most
    NET_BIND_SERVICE), runAsNonRoot, no runAsUser 0, seccompProfile RuntimeDefault or Localhost,
    no unsafe sysctls, no Unconfined AppArmor;
  * the project's own rules for the kmsgate container: readOnlyRootFilesystem, resource requests
    and a memory limit, /readyz and /healthz probes on the admin port, prometheus.io annotations
    on that port, container ports that match the config's listen addresses, and
    terminationGracePeriodSeconds at least preStop sleep + shutdown.grace_period +
    shutdown.drain_timeout + 5s;
and across objects: every Service, PodDisruptionBudget and NetworkPolicy selects pods of the
render (the gateway's or another workload's, such as etcd's), named target ports exist on them, the ServiceMonitor selects a Service that has its port, mounted ConfigMaps
exist in the render. Writes the kmsgate.toml found in the config ConfigMap to CONFIG_OUT.toml
(ci-check.sh runs `kmsgate check-config` on it).
"""

import re
import sys
import tomllib

import yaml

ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

errors = []


def fail(where, message):
    errors.append(f"{where}: {message}")


def duration_seconds(text):
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def check_restricted(where, pod):
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            fail(where, f"{key}: true is not allowed (restricted)")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            fail(where, f"volume {volume['name']}: type {sorted(kinds)} is not allowed (restricted)")
    psc = pod.get("securityContext", {})
    for sysctl in psc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            fail(where, f"sysctl {sysctl['name']} is not allowed (baseline)")
    if psc.get("runAsUser") == 0:
        fail(where, "pod runAsUser 0 (restricted)")
    pod_seccomp = psc.get("seccompProfile", {}).get("type")
    if pod_seccomp == "Unconfined":
        fail(where, "pod seccompProfile Unconfined (restricted)")
    containers = pod.get("initContainers", []) + pod.get("containers", [])
    if not containers:
        fail(where, "no containers")
    for c in containers:
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            fail(cw, "privileged (baseline)")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(cw, "allowPrivilegeEscalation must be false (restricted)")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            fail(cw, "capabilities.drop must include ALL (restricted)")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            fail(cw, f"capabilities.add {caps['add']} (restricted allows NET_BIND_SERVICE only)")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            fail(cw, "runAsNonRoot must be true, on the pod or the container (restricted)")
        if sc.get("runAsUser") == 0:
            fail(cw, "runAsUser 0 (restricted)")
        seccomp = sc.get("seccompProfile", {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            fail(cw, "seccompProfile must be RuntimeDefault or Localhost (restricted)")
        if sc.get("procMount", "Default") != "Default":
            fail(cw, "procMount must be Default (baseline)")
        if sc.get("appArmorProfile", {}).get("type") == "Unconfined":
            fail(cw, "AppArmor Unconfined (baseline)")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                fail(cw, "hostPort (baseline)")


def main():
    overlay, rendered, config_out = sys.argv[1:4]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"] for d in by_kind.get("Secret", [])}
    external_secrets = set()
    pods = []  # (where, labels, pod spec)
    for kind in WORKLOADS:
        for w in by_kind.get(kind, []):
            where = f"{overlay}: {kind}/{w['metadata']['name']}"
            template = w["spec"]["template"]
            labels = template["metadata"].get("labels", {})
            selector = w["spec"].get("selector", {}).get("matchLabels", {})
            if kind != "Job" and not matches(selector, labels):
                fail(where, "spec.selector does not match the pod template's labels")
            pods.append((where, template, labels))
    for p in by_kind.get("Pod", []):
        pods.append((f"{overlay}: Pod/{p['metadata']['name']}", p, p["metadata"].get("labels", {})))
    if not pods:
        fail(overlay, "no workload rendered")

    gateway = None
    for where, template, labels in pods:
        pod = template["spec"]
        check_restricted(where, pod)
        if pod.get("automountServiceAccountToken") is not False:
            fail(where, "automountServiceAccountToken should be false (kmsgate never calls the API)")
        for volume in pod.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
                fail(where, f"volume {volume['name']}: ConfigMap {volume['configMap']['name']} is not in the render")
            if "secret" in volume and volume["secret"]["secretName"] not in secrets:
                external_secrets.add(volume["secret"]["secretName"])
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            # The gateway runs `kmsgate run`; other kmsgate containers (a Job running
            # `kmsgate policies import-dir`) are checked as pods only.
            if "kmsgate" in c.get("image", "") and c.get("args", ["run"])[:1] == ["run"]:
                gateway = (where, template, labels, c)

    if gateway is None:
        fail(overlay, "no kmsgate container found")
        return report(overlay, external_secrets)
    where, template, labels, c = gateway
    pod = template["spec"]
    cw = f"{where} container {c['name']}"
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True:
        fail(cw, "readOnlyRootFilesystem must be true")
    resources = c.get("resources", {})
    for key in ("cpu", "memory"):
        if key not in resources.get("requests", {}):
            fail(cw, f"resources.requests.{key} missing")
    if "memory" not in resources.get("limits", {}):
        fail(cw, "resources.limits.memory missing")

    # The config the container runs with.
    args = c.get("args", [])
    if "--config" not in args:
        fail(cw, "no --config argument")
        return report(overlay, external_secrets)
    config_path = args[args.index("--config") + 1]
    mount_dir, config_file = config_path.rsplit("/", 1)
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    volume = volumes.get(mounts.get(mount_dir, ""), {})
    cm = configmaps.get(volume.get("configMap", {}).get("name", ""))
    if cm is None or config_file not in cm.get("data", {}):
        fail(cw, f"{config_path} does not come from a ConfigMap in the render")
        return report(overlay, external_secrets)
    text = cm["data"][config_file]
    open(config_out, "w").write(text)
    config = tomllib.loads(text)
    for key, path in (("dir", config.get("policies", {}).get("dir")),):
        if path and path not in mounts:
            fail(cw, f"policies.{key} {path} is not a mounted volume")
    # [policies.etcd]: every endpoint is a member of a StatefulSet of the render,
    # http://<name>-<ordinal>.<serviceName>:<a container port>.
    for endpoint in config.get("policies", {}).get("etcd", {}).get("endpoints", []):
        m = re.fullmatch(r"https?://(.+)-(\d+)\.([^.:]+):(\d+)", endpoint)
        member = m and next((st for st in by_kind.get("StatefulSet", [])
                             if st["metadata"]["name"] == m.group(1)
                             and st["spec"].get("serviceName") == m.group(3)
                             and int(m.group(2)) < st["spec"].get("replicas", 1)), None)
        if not member:
            fail(cw, f"policies.etcd endpoint {endpoint} is no member of a StatefulSet in the render")
        elif int(m.group(4)) not in {p["containerPort"] for c2 in member["spec"]["template"]["spec"]["containers"]
                                     for p in c2.get("ports", [])}:
            fail(cw, f"policies.etcd endpoint {endpoint}: the port is no container port of {m.group(1)}")
    tls = config.get("listen", {}).get("tls", {})
    for key in ("cert_file", "key_file"):
        if key in tls and tls[key].rsplit("/", 1)[0] not in mounts:
            fail(cw, f"listen.tls.{key} {tls[key]} is not on a mounted volume")

    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    listen = config.get("listen", {})
    admin_port = port_of(listen.get("admin", "127.0.0.1:9090"))
    if admin_port not in ports.values():
        fail(cw, f"listen.admin port {admin_port} is not a container port")
    for name in ("public", "private"):
        address = listen.get(name)
        if address and not address.startswith("127.") and port_of(address) not in ports.values():
            fail(cw, f"listen.{name} {address}: port not declared on the container")
    admin_name = next((n for n, p in ports.items() if p == admin_port), None)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in (admin_name, admin_port):
            fail(cw, f"{probe} must GET {path} on the admin port")
    annotations = template["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(admin_port):
        fail(where, "prometheus.io/scrape and prometheus.io/port (the admin port) annotations missing")

    # Shutdown: the kubelet waits terminationGracePeriodSeconds for preStop, kmsgate's grace
    # period (still serving, /readyz 503) and the drain, then sends SIGKILL. Defaults as in
    # src/config/mod.rs.
    shutdown = config.get("shutdown", {})
    serving = duration_seconds(shutdown.get("grace_period", "5s"))
    drain = duration_seconds(shutdown.get("drain_timeout", "30s"))
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < pre_stop + serving + drain + 5:
        fail(where, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop}s + grace_period {serving:g}s"
                    f" + drain_timeout {drain:g}s + 5s")

    # Objects that select pods: each selects a workload of the render (the gateway's, or
    # another one such as etcd's in deploy/fleet), and its named ports are that workload's.
    def selected(selector):
        """The pod template a selector matches (None: none), and whether it is the gateway's."""
        for _, t, l in pods:
            if matches(selector, l):
                return t, l == labels
        return None, False

    def port_names(t):
        spec = t["spec"]
        return {p["name"] for c2 in spec.get("initContainers", []) + spec["containers"] for p in c2.get("ports", [])}

    services = by_kind.get("Service", [])
    for s in services:
        sw = f"{overlay}: Service/{s['metadata']['name']}"
        t, _ = selected(s["spec"].get("selector", {}))
        if t is None:
            fail(sw, "selector matches no pods of the render")
            continue
        for p in s["spec"]["ports"]:
            target = p.get("targetPort")
            if isinstance(target, str) and target not in port_names(t):
                fail(sw, f"targetPort {target} is no container port name")
    for p in by_kind.get("PodDisruptionBudget", []):
        if selected(p["spec"].get("selector", {}).get("matchLabels", {}))[0] is None:
            fail(f"{overlay}: PodDisruptionBudget/{p['metadata']['name']}", "selector matches no pods of the render")
    for n in by_kind.get("NetworkPolicy", []):
        nw = f"{overlay}: NetworkPolicy/{n['metadata']['name']}"
        t, is_gateway = selected(n["spec"].get("podSelector", {}).get("matchLabels", {}))
        if t is None:
            fail(nw, "podSelector matches no pods of the render")
            continue
        for rule in n["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                if isinstance(p.get("port"), str) and p["port"] not in port_names(t):
                    fail(nw, f"port {p['port']} is no container port name")
        if is_gateway and admin_name and not any(p.get("port") in (admin_name, admin_port)
                                                 for r in n["spec"].get("ingress", []) for p in r.get("ports", [])):
            fail(nw, "the admin port (probes are from the kubelet; Prometheus needs a rule) is not allowed in")
    if not any(matches(p["spec"].get("selector", {}).get("matchLabels", {}), labels)
               for p in by_kind.get("PodDisruptionBudget", [])):
        fail(overlay, "no PodDisruptionBudget for the gateway")
    for m in by_kind.get("ServiceMonitor", []):
        mw = f"{overlay}: ServiceMonitor/{m['metadata']['name']}"
        selector = m["spec"].get("selector", {}).get("matchLabels", {})
        selected = [s for s in services if matches(selector, s["metadata"].get("labels", {}))]
        if not selected:
            fail(mw, "selects no Service")
        for e in m["spec"].get("endpoints", []):
            if not any(e.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in selected):
                fail(mw, f"endpoint port {e.get('port')} is on no selected Service")
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"):
        if kind not in by_kind:
            fail(overlay, f"no {kind}")
    if overlay in ("standalone", "fleet"):
        targets = {p.get("targetPort") for s in services for p in s["spec"]["ports"]}
        for name in ("public", "private", "admin"):
            if name not in targets:
                fail(overlay, f"no Service for the {name} port")
    return report(overlay, external_secrets)


def report(overlay, external_secrets):
    if external_secrets:
        print(f"  {overlay}: Secrets created outside the manifests: {', '.join(sorted(external_secrets))}")
    for e in errors:
        print(f"  FAIL {e}")
    if errors:
        sys.exit(1)
    print(f"  {overlay}: Restricted Pod Security Standard and deployment rules: ok")


if __name__ == "__main__":
    main()
