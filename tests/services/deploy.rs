//! The deployment files, offline: `scripts/k8s-check.sh` renders both kustomize overlays
//! (`kubectl kustomize`), validates every object against the Kubernetes schemas
//! (kubernetes-validate), runs checkov on them and the Dockerfile, hadolint on the Dockerfile and
//! Docker Compose's own check of compose.yaml (its tools come from PyPI into a venv). Here the
//! rendered objects are read back and held to what the binary needs: the cluster size agrees with
//! the replicas, the ConfigMap is a configuration the binary loads, the probes ask for endpoints
//! it serves, the grace period covers the drain, the pods are hardened and sized.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the check script once for every test here; the rendered overlays' directory.
fn rendered() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("k8s-check");
        let res = Command::new("bash")
            .arg(repo().join("scripts/k8s-check.sh"))
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(
            res.status.success(),
            "scripts/k8s-check.sh failed:\n{}\n{stderr}",
            String::from_utf8_lossy(&res.stdout)
        );
        assert!(stderr.contains("k8s-check: OK"), "{stderr}");
        out
    })
}

fn objects(overlay: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(rendered().join(format!("{overlay}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// A ConfigMap or Secret by the name before kustomize's hash suffix.
fn generated<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let hashed = |o: &&Value| {
        let n = o["metadata"]["name"].as_str().unwrap_or("");
        o["kind"] == kind
            && n.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    };
    objs.iter()
        .find(hashed)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// A container's plain `env` values (not the ones from secrets).
fn plain_env(c: &Value) -> BTreeMap<String, String> {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn secret_ref<'a>(c: &'a Value, var: &str) -> Option<&'a Value> {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == var)
        .map(|e| &e["valueFrom"]["secretKeyRef"])
}

fn port(c: &Value, name: &str) -> u64 {
    c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no port {name}"))
}

/// Bytes or millicores of a Kubernetes quantity (the forms the manifests use).
fn quantity(q: &Value) -> u64 {
    let s = q
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| q.to_string());
    for (suffix, mult) in [
        ("Gi", 1u64 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
        ("m", 1),
    ] {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap() * mult;
        }
    }
    s.parse::<u64>().unwrap() * 1000
}

#[test]
fn both_overlays_render_validate_and_pass_the_linters() {
    for overlay in ["dev", "prod"] {
        let objs = objects(overlay);
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for o in &objs {
            *kinds
                .entry(o["kind"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let expected: BTreeMap<String, usize> = [
            ("ConfigMap", 4),
            ("Deployment", 2),
            ("Namespace", 1),
            ("NetworkPolicy", 3),
            ("PodDisruptionBudget", 2),
            ("Secret", 1),
            ("Service", 3),
            ("StatefulSet", 1),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        assert_eq!(kinds, expected, "{overlay}");
        let ns = &objs.iter().find(|o| o["kind"] == "Namespace").unwrap()["metadata"]["name"];
        assert_eq!(
            ns,
            if overlay == "dev" {
                "cryptoflow-dev"
            } else {
                "cryptoflow"
            }
        );
        for o in objs.iter().filter(|o| o["kind"] != "Namespace") {
            assert_eq!(&o["metadata"]["namespace"], ns, "{overlay}: {o}");
        }
    }
    let services = std::fs::read_to_string(rendered().join("compose-services.txt")).unwrap();
    let services: Vec<&str> = services.split_whitespace().collect();
    for s in [
        "postgres",
        "kafka",
        "redis",
        "migrate",
        "run",
        "serve",
        "execute",
        "prometheus",
        "grafana",
    ] {
        assert!(
            services.contains(&s),
            "compose.yaml lacks {s}: {services:?}"
        );
    }
}

#[test]
fn the_cluster_size_is_the_replicas_and_the_hosts_are_the_headless_service() {
    for (overlay, size) in [("dev", 2), ("prod", 3)] {
        let objs = objects(overlay);
        let sts = find(&objs, "StatefulSet", "cryptoflow");
        assert_eq!(sts["spec"]["replicas"], size, "{overlay}");
        assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel", "{overlay}");
        let c = container(sts, "pipeline");
        let env = plain_env(c);
        assert_eq!(env["CRYPTOFLOW_PROCESSES"], size.to_string(), "{overlay}");
        // No process index in the environment: it comes from the pod's hostname.
        assert!(!env.contains_key("CRYPTOFLOW_PROCESS"), "{overlay}");
        let headless = sts["spec"]["serviceName"].as_str().unwrap();
        let svc = find(&objs, "Service", headless);
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["publishNotReadyAddresses"], true);
        let cluster_port = port(c, "cluster");
        assert_eq!(
            env["CRYPTOFLOW_HOSTS"],
            format!("cryptoflow-{{i}}.{headless}:{cluster_port}"),
            "{overlay}: the pods' names are the StatefulSet's name and an ordinal"
        );
        assert_eq!(sts["metadata"]["name"], "cryptoflow");
        assert_eq!(
            c["args"],
            serde_json::json!(["--log-format", "json", "run"]),
            "{overlay}"
        );
    }
}

#[test]
fn serve_has_replicas_and_execute_is_one_paper_recreate() {
    for (overlay, serve_replicas) in [("dev", 2), ("prod", 3)] {
        let objs = objects(overlay);
        let serve = find(&objs, "Deployment", "cryptoflow-serve");
        assert_eq!(serve["spec"]["replicas"], serve_replicas, "{overlay}");
        let pdb = find(&objs, "PodDisruptionBudget", "cryptoflow-serve");
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        let execute = find(&objs, "Deployment", "cryptoflow-execute");
        assert_eq!(execute["spec"]["replicas"], 1, "{overlay}");
        assert_eq!(execute["spec"]["strategy"]["type"], "Recreate", "{overlay}");
        let args = container(execute, "execute")["args"]
            .as_array()
            .unwrap()
            .clone();
        assert!(args.iter().any(|a| a == "execute"), "{args:?}");
        assert!(
            !args.iter().any(|a| a == "--live"),
            "{overlay}: the executor must trade on paper unless switched: {args:?}"
        );
    }
}

#[test]
fn the_config_map_loads_and_the_probes_ports_and_grace_period_agree_with_it() {
    let paths = cryptoflow::serve::openapi::document()["paths"].clone();
    for overlay in ["dev", "prod"] {
        let objs = objects(overlay);
        let cm = generated(&objs, "ConfigMap", "cryptoflow-config");
        let toml = cm["data"]["cryptoflow.toml"].as_str().unwrap();
        let file = rendered().join(format!("{overlay}-cryptoflow.toml"));
        std::fs::write(&file, toml).unwrap();
        let endpoints = generated(&objs, "ConfigMap", "cryptoflow-endpoints");
        let sts = find(&objs, "StatefulSet", "cryptoflow");
        let pipeline = container(sts, "pipeline");
        // What the pipeline's process sees: the file, its plain env and the endpoints.
        let mut env: Vec<(String, String)> = plain_env(pipeline).into_iter().collect();
        for (k, v) in endpoints["data"].as_object().unwrap() {
            env.push((k.clone(), v.as_str().unwrap().to_string()));
        }
        let cfg = cryptoflow::config::Config::load(Some(&file), env)
            .unwrap_or_else(|e| panic!("{overlay}: the ConfigMap's TOML does not load: {e:#}"));
        assert_eq!(
            plain_env(pipeline)["CRYPTOFLOW_CONFIG"],
            "/etc/cryptoflow/cryptoflow.toml"
        );

        // SIGTERM drains within pipeline.shutdown_deadline_s: the pod gets longer than that.
        let grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        assert!(
            grace > cfg.pipeline.shutdown_deadline_s,
            "{overlay}: grace {grace} s <= shutdown_deadline_s {}",
            cfg.pipeline.shutdown_deadline_s
        );

        // The HTTP port is serve.listen's, off loopback, so the API tokens must come with it.
        let listen = cfg.serve.address().unwrap();
        assert!(!listen.ip().is_loopback());
        let serve = find(&objs, "Deployment", "cryptoflow-serve");
        for c in [pipeline, container(serve, "serve")] {
            assert_eq!(port(c, "http"), u64::from(listen.port()), "{overlay}");
            for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
                assert_eq!(c[probe]["httpGet"]["path"], path, "{overlay} {probe}");
                assert_eq!(c[probe]["httpGet"]["port"], "http", "{overlay} {probe}");
                assert!(paths.get(path).is_some(), "the API serves no {path}");
            }
            let tokens = secret_ref(c, "CRYPTOFLOW_API_TOKENS").expect("API tokens");
            assert!(tokens["optional"].is_null() || tokens["optional"] == false);
        }
        // The executor's control API: its port, and a token (required off loopback).
        let execute = container(find(&objs, "Deployment", "cryptoflow-execute"), "execute");
        let control: std::net::SocketAddr = cfg.trading.execute.control.parse().unwrap();
        assert_eq!(port(execute, "control"), u64::from(control.port()));
        assert!(secret_ref(execute, "CRYPTOFLOW_CONTROL_TOKEN").is_some());
        assert_eq!(
            plain_env(execute)["CRYPTOFLOW_CONTROL_URL"],
            format!("http://127.0.0.1:{}", control.port())
        );
        for (probe, path) in [
            ("startupProbe", "/ready"),
            ("livenessProbe", "/health"),
            ("readinessProbe", "/ready"),
        ] {
            assert_eq!(execute[probe]["httpGet"]["path"], path, "{overlay} {probe}");
            assert_eq!(
                execute[probe]["httpGet"]["port"], "control",
                "{overlay} {probe}"
            );
        }
        // Every secret a container needs is a key of the generated Secret.
        let secret = generated(&objs, "Secret", "cryptoflow-secrets");
        let keys = secret["data"].as_object().unwrap();
        for w in objs
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
        {
            let spec = &w["spec"]["template"]["spec"];
            for c in spec["containers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(spec["initContainers"].as_array().into_iter().flatten())
            {
                for e in c["env"].as_array().unwrap() {
                    let r = &e["valueFrom"]["secretKeyRef"];
                    let Some(key) = r["key"].as_str() else {
                        continue;
                    };
                    assert_eq!(r["name"], secret["metadata"]["name"]);
                    // Optional ones may be left out of secrets.env; the others are in its example.
                    if r["optional"] != true {
                        assert!(keys.contains_key(key), "{overlay}: no secret key {key}");
                    }
                }
            }
        }
    }
}

#[test]
fn pods_are_non_root_read_only_and_sized() {
    for overlay in ["dev", "prod"] {
        let objs = objects(overlay);
        for w in objs
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
        {
            let name = w["metadata"]["name"].as_str().unwrap();
            let spec = &w["spec"]["template"]["spec"];
            assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
            assert!(spec["securityContext"]["runAsUser"].as_u64().unwrap() > 10000);
            assert_eq!(
                spec["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            assert_eq!(spec["automountServiceAccountToken"], false, "{name}");
            for c in spec["containers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(spec["initContainers"].as_array().into_iter().flatten())
            {
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
                let r = &c["resources"];
                for what in ["cpu", "memory"] {
                    let req = quantity(&r["requests"][what]);
                    let lim = quantity(&r["limits"][what]);
                    assert!(req > 0 && req <= lim, "{overlay} {name}: {what} {r}");
                }
            }
            if w["kind"] != "Deployment" || name != "cryptoflow-execute" {
                let ann = &w["spec"]["template"]["metadata"]["annotations"];
                assert_eq!(ann["prometheus.io/scrape"], "true", "{name}");
                assert_eq!(ann["prometheus.io/path"], "/metrics", "{name}");
            }
        }
    }
}

#[test]
fn only_the_pipeline_pods_reach_the_cluster_port() {
    for overlay in ["dev", "prod"] {
        let objs = objects(overlay);
        let sts = find(&objs, "StatefulSet", "cryptoflow");
        let labels = &sts["spec"]["template"]["metadata"]["labels"];
        let cluster_port = port(container(sts, "pipeline"), "cluster");
        let policies: Vec<&Value> = objs
            .iter()
            .filter(|o| o["kind"] == "NetworkPolicy")
            .collect();
        let mut reaching = 0;
        for p in &policies {
            for rule in p["spec"]["ingress"].as_array().unwrap() {
                let opens = rule["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["port"].as_u64() == Some(cluster_port));
                if !opens {
                    continue;
                }
                reaching += 1;
                // The policy selects the pipeline's pods, and lets only them in.
                let selected = p["spec"]["podSelector"]["matchLabels"].as_object().unwrap();
                assert!(selected.iter().all(|(k, v)| &labels[k] == v), "{p}");
                let from = rule["from"].as_array().unwrap();
                assert_eq!(from.len(), 1, "{p}");
                assert!(
                    from[0].get("namespaceSelector").is_none() && from[0].get("ipBlock").is_none()
                );
                let peers = from[0]["podSelector"]["matchLabels"].as_object().unwrap();
                assert_eq!(peers, selected, "{p}");
            }
        }
        assert_eq!(reaching, 1, "{overlay}: one rule opens the cluster port");
    }
}
