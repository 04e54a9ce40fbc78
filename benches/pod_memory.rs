//! Memory per cached pod: the heap the metadata cache holds for N realistic pods (labels,
//! annotations, two containers with images and ids, an owner), measured exactly by dhat's
//! counting allocator. `cargo bench --bench pod_memory`; under `cargo test` it runs with
//! fewer pods.

use std::num::NonZeroUsize;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use shiplog::kube::{PodMeta, pod_cache};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn pod(n: usize) -> Pod {
    let id = format!("{n:064x}");
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("checkout-7d9f8b6c5-{n:05}"), "namespace": "shop",
            "uid": format!("5f1c77aa-0000-4000-8000-{n:012}"),
            "labels": {"app": "checkout", "pod-template-hash": "7d9f8b6c5", "team": "payments",
                       "app.kubernetes.io/version": "3.2.0"},
            "annotations": {"shiplog.io/parser": "json", "prometheus.io/scrape": "true",
                            "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8b6c5",
                                 "uid": "u", "controller": true}]
        },
        "spec": {"nodeName": "node-a", "containers": [
            {"name": "app", "image": "registry.example.com/shop/checkout:3.2.0"},
            {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.1"}]},
        "status": {"containerStatuses": [
            {"name": "app", "image": "registry.example.com/shop/checkout:3.2.0",
             "imageID": format!("registry.example.com/shop/checkout@sha256:{id}"),
             "containerID": format!("containerd://{id}"), "ready": true, "restartCount": 0},
            {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.1",
             "imageID": format!("docker.io/istio/proxyv2@sha256:{id}"),
             "containerID": format!("containerd://{id}"), "ready": true, "restartCount": 0}]}
    }))
    .expect("a Pod")
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let benching = std::env::args().any(|a| a == "--bench");
    let pods = if benching { 4096 } else { 64 };
    let metas: Vec<PodMeta> = (0..pods)
        .filter_map(|n| PodMeta::from_pod(&pod(n)))
        .collect();
    let capacity = NonZeroUsize::new(pods).expect("pods > 0");
    let before = dhat::HeapStats::get().curr_bytes;
    let (cache, mut writer) = pod_cache(capacity, Duration::from_secs(300));
    for meta in metas {
        writer.upsert(meta);
    }
    let after = dhat::HeapStats::get().curr_bytes;
    // The metas moved into the cache: what the cache holds is their bytes plus its own.
    let moved_in: usize = (0..pods)
        .filter_map(|n| PodMeta::from_pod(&pod(n)))
        .map(|m| heap_of(&m))
        .sum();
    println!(
        "{pods} pods cached: cache structure {} bytes/pod; with the pods' own strings {} bytes/pod",
        (after - before) / pods,
        (after - before + moved_in) / pods,
    );
    assert!(cache.get("shop", "checkout-7d9f8b6c5-00000").is_some());
}

/// Heap bytes owned by one PodMeta, measured by building a copy.
fn heap_of(meta: &PodMeta) -> usize {
    let before = dhat::HeapStats::get().curr_bytes;
    let copy = meta.clone();
    let used = dhat::HeapStats::get().curr_bytes - before;
    drop(copy);
    used
}
