"""Checks what schemas can't: that every workload of a rendered kustomize overlay is run the way
charla's manifests promise (k8s/base/kustomization.yaml).

Usage: k8s_check.py OVERLAY_NAME RENDERED.yaml [EXTERNAL_SECRET...]

Every Deployment: a hardened security context, requests and limits, gRPC readiness and liveness
probes on its gRPC port, a replica count or an HorizontalPodAutoscaler (not both), a
PodDisruptionBudget and a NetworkPolicy of its own, and a termination grace period longer than its
drain. Every other workload: the security context, resources and probes. Every ConfigMap and Secret
referenced exists in the render, or is one of EXTERNAL_SECRET (Secrets the operator creates).
Prints each problem and exits 1 if there is any.
"""

import sys

import yaml

# What the services assume when a setting is unset (`charla serve SERVICE --help`).
DEFAULT_REQUEST_TIMEOUT_SECS = 30


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`."""
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


class Checker:
    def __init__(self, objects, external_secrets):
        self.objects = objects
        self.external_secrets = set(external_secrets)
        self.problems = []

    def of_kind(self, kind):
        return [o for o in self.objects if o.get("kind") == kind]

    def names(self, kind):
        return {o["metadata"]["name"] for o in self.of_kind(kind)}

    def problem(self, workload, text):
        self.problems.append(f"{workload['kind']}/{workload['metadata']['name']}: {text}")

    def check_pod(self, workload):
        pod = workload["spec"]["template"]["spec"]
        security = pod.get("securityContext") or {}
        if security.get("runAsNonRoot") is not True:
            self.problem(workload, "the pod must set runAsNonRoot: true")
        if (security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            self.problem(workload, "the pod must use the RuntimeDefault seccomp profile")
        if pod.get("automountServiceAccountToken") is not False:
            self.problem(workload, "the pod must not mount a service account token")
        for container in pod["containers"]:
            self.check_container(workload, container)
        self.check_references(workload, pod)

    def check_container(self, workload, container):
        name = container["name"]
        security = container.get("securityContext") or {}
        if security.get("allowPrivilegeEscalation") is not False:
            self.problem(workload, f"{name}: allowPrivilegeEscalation must be false")
        if security.get("readOnlyRootFilesystem") is not True:
            self.problem(workload, f"{name}: the root filesystem must be read-only")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            self.problem(workload, f"{name}: every capability must be dropped")
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(bound) or {}):
                    self.problem(workload, f"{name}: no {resource} {bound[:-1]}")
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                self.problem(workload, f"{name}: no {probe}")

    def check_references(self, workload, pod):
        config_maps, secrets = self.names("ConfigMap"), self.names("Secret") | self.external_secrets
        for container in pod["containers"]:
            for source in container.get("envFrom") or []:
                if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps:
                    self.problem(workload, f"no ConfigMap {source['configMapRef']['name']}")
                if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                    self.problem(workload, f"no Secret {source['secretRef']['name']}")
            for variable in container.get("env") or []:
                reference = (variable.get("valueFrom") or {})
                if "secretKeyRef" in reference and reference["secretKeyRef"]["name"] not in secrets:
                    self.problem(workload, f"no Secret {reference['secretKeyRef']['name']}")
                if "configMapKeyRef" in reference and reference["configMapKeyRef"]["name"] not in config_maps:
                    self.problem(workload, f"no ConfigMap {reference['configMapKeyRef']['name']}")
        for volume in pod.get("volumes") or []:
            if "secret" in volume and volume["secret"]["secretName"] not in secrets:
                self.problem(workload, f"no Secret {volume['secret']['secretName']}")
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                self.problem(workload, f"no ConfigMap {volume['configMap']['name']}")

    def check_deployment(self, deployment):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        for container in pod["containers"]:
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                grpc = (container.get(probe) or {}).get("grpc")
                if probe != "startupProbe" and grpc is None:
                    self.problem(deployment, f"{probe} must be a gRPC health check")
                elif grpc is not None and grpc.get("port") != ports.get("grpc"):
                    self.problem(deployment, f"{probe} must probe the port named grpc")
        autoscalers = [
            h for h in self.of_kind("HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            and h["spec"]["scaleTargetRef"]["name"] == name
        ]
        replicas = deployment["spec"].get("replicas")
        if autoscalers and replicas is not None:
            self.problem(deployment, "both an autoscaler and a replica count: each apply resets the autoscaler's count")
        if not autoscalers and replicas is None:
            self.problem(deployment, "neither an autoscaler nor a replica count")
        if not any(selects(p["spec"].get("selector"), labels) for p in self.of_kind("PodDisruptionBudget")):
            self.problem(deployment, "no PodDisruptionBudget selects its pods")
        if not any(
            p["spec"].get("podSelector") and selects(p["spec"]["podSelector"], labels)
            for p in self.of_kind("NetworkPolicy")
        ):
            self.problem(deployment, "no NetworkPolicy of its own selects its pods")
        drain = self.setting(pod, "CHARLA_DRAIN_DELAY_MS", 0) / 1000 + self.setting(
            pod, "CHARLA_REQUEST_TIMEOUT_SECS", DEFAULT_REQUEST_TIMEOUT_SECS
        )
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace <= drain:
            self.problem(deployment, f"terminationGracePeriodSeconds {grace} is not longer than the drain ({drain:g} s)")

    def setting(self, pod, variable, default):
        """A numeric setting as the pod's containers get it (the largest), or `default`."""
        config_maps = {c["metadata"]["name"]: c.get("data") or {} for c in self.of_kind("ConfigMap")}
        values = []
        for container in pod["containers"]:
            value = None
            # Later sources win, as in Kubernetes: envFrom in order, then env.
            for source in container.get("envFrom") or []:
                data = config_maps.get((source.get("configMapRef") or {}).get("name"), {})
                value = data.get(variable, value)
            for entry in container.get("env") or []:
                if entry["name"] == variable and "value" in entry:
                    value = entry["value"]
            values.append(default if value is None else int(value))
        return max(values, default=default)

    def run(self):
        deployments = self.of_kind("Deployment")
        if not deployments:
            self.problems.append("no Deployment rendered")
        for workload in deployments + self.of_kind("StatefulSet") + self.of_kind("DaemonSet"):
            self.check_pod(workload)
        for deployment in deployments:
            self.check_deployment(deployment)
        return deployments


def main():
    overlay, rendered, external = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(rendered) as file:
        objects = [o for o in yaml.safe_load_all(file) if o]
    checker = Checker(objects, external)
    deployments = checker.run()
    for problem in checker.problems:
        print(f"  {overlay}: {problem}")
    names = ", ".join(d["metadata"]["name"] for d in deployments)
    print(f"  {overlay}: {len(objects)} objects, Deployments {names}: "
          + ("as promised" if not checker.problems else f"{len(checker.problems)} problems"))
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())
