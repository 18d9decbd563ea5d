//! The dependency graph (petgraph): start order in parallel waves, reverse stop order, cycles.
//!
//! Pure: names in, orders out. An edge `(a, b)` means `a` depends on `b`.

use std::collections::HashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

fn build<'a>(
    nodes: impl IntoIterator<Item = &'a str>,
    edges: &[(String, String)],
) -> (DiGraph<String, ()>, HashMap<String, NodeIndex>) {
    let mut g = DiGraph::new();
    let mut idx = HashMap::new();
    for n in nodes {
        idx.entry(n.to_string())
            .or_insert_with(|| g.add_node(n.to_string()));
    }
    for (from, to) in edges {
        if let (Some(&a), Some(&b)) = (idx.get(from), idx.get(to)) {
            g.add_edge(a, b, ());
        }
    }
    (g, idx)
}

/// Every dependency cycle, each as the list of apps along it (first app first, in file order).
pub fn cycles<'a>(
    nodes: impl IntoIterator<Item = &'a str> + Clone,
    edges: &[(String, String)],
) -> Vec<Vec<String>> {
    let order: Vec<String> = nodes.clone().into_iter().map(str::to_string).collect();
    let (g, idx) = build(nodes, edges);
    let mut out = Vec::new();
    for scc in tarjan_scc(&g) {
        let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        // Start from the app declared first, then walk edges inside the component until the
        // walk returns to the start: that walk is one whole cycle.
        let Some(start) = order
            .iter()
            .filter_map(|n| idx.get(n))
            .find(|i| scc.contains(i))
            .copied()
        else {
            continue;
        };
        out.push(walk_cycle(&g, &scc, start));
    }
    out.sort_by_key(|c| {
        c.first()
            .and_then(|f| order.iter().position(|o| o == f))
            .unwrap_or(usize::MAX)
    });
    out
}

fn walk_cycle(g: &DiGraph<String, ()>, scc: &[NodeIndex], start: NodeIndex) -> Vec<String> {
    // Breadth-first search inside the component for the shortest path back to `start`.
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut succ: Vec<NodeIndex> = g.neighbors(n).filter(|m| scc.contains(m)).collect();
        succ.sort();
        for m in succ {
            if m == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = prev[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path.into_iter().map(|i| g[i].clone()).collect();
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![g[start].clone()]
}

/// Start order as waves: every app of a wave depends only on apps of earlier waves, so a wave's
/// apps may start in parallel. Within a wave, file order. Apps in cycles are left out.
pub fn waves(nodes: &[String], edges: &[(String, String)]) -> Vec<Vec<String>> {
    let mut remaining: Vec<&String> = nodes.iter().collect();
    let mut placed: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Vec<String>> = Vec::new();
    loop {
        let wave: Vec<&String> = remaining
            .iter()
            .copied()
            .filter(|n| {
                edges
                    .iter()
                    .filter(|(from, _)| from == *n)
                    .all(|(_, to)| placed.contains_key(to.as_str()) || !nodes.contains(to))
            })
            .collect();
        if wave.is_empty() {
            break;
        }
        for n in &wave {
            placed.insert(n.as_str(), out.len());
        }
        remaining.retain(|n| !placed.contains_key(n.as_str()));
        out.push(wave.into_iter().cloned().collect());
    }
    out
}

/// Stop order: the start waves reversed.
pub fn stop_waves(nodes: &[String], edges: &[(String, String)]) -> Vec<Vec<String>> {
    let mut w = waves(nodes, edges);
    w.reverse();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn n(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn waves_group_independent_apps() {
        let nodes = n(&["web", "migrate", "worker", "redis"]);
        let edges = e(&[("web", "migrate"), ("web", "redis"), ("migrate", "redis")]);
        assert_eq!(
            waves(&nodes, &edges),
            vec![n(&["worker", "redis"]), n(&["migrate"]), n(&["web"])]
        );
        assert_eq!(
            stop_waves(&nodes, &edges),
            vec![n(&["web"]), n(&["migrate"]), n(&["worker", "redis"])]
        );
    }

    #[test]
    fn cycles_list_the_whole_cycle() {
        let nodes = ["a", "b", "c", "d"];
        let edges = e(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]);
        assert_eq!(cycles(nodes, &edges), vec![n(&["a", "b", "c"])]);
        let self_loop = e(&[("d", "d")]);
        assert_eq!(cycles(nodes, &self_loop), vec![n(&["d"])]);
        assert!(cycles(nodes, &e(&[("a", "b")])).is_empty());
    }
}
