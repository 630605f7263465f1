//! Oracle tests of the user-agent classifier against public corpora, vendored
//! in `testdata/ua/` (see its README for sources and licenses). Each test
//! prints its measured rate; run with `--nocapture` to see them.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::OnceLock;

use ecstatic_enrich::{Device, UaClass, UaClassifier};
use flate2::read::GzDecoder;
use serde::Deserialize;

fn classifier() -> &'static UaClassifier {
    static CLASSIFIER: OnceLock<UaClassifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| UaClassifier::new(1024))
}

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/ua")
        .join(path)
}

/// The lines of a fixture, gunzipped when its name ends in `.gz`.
fn lines(path: &str) -> Vec<String> {
    let file = std::fs::File::open(fixture(path))
        .unwrap_or_else(|e| panic!("cannot open fixture `{path}`: {e}"));
    let reader: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    BufReader::new(reader)
        .lines()
        .map(|l| l.unwrap_or_else(|e| panic!("cannot read fixture `{path}`: {e}")))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn jsonl<T: for<'de> Deserialize<'de>>(path: &str) -> Vec<T> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line in `{path}`: {e}")))
        .collect()
}

/// Classifies `agents` on every core (the corpora are large for a debug build).
fn classify_all(agents: &[String]) -> Vec<UaClass> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = agents.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|a| classifier().classify_uncached(a))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("classifier thread"))
            .collect()
    })
}

fn rate(hits: usize, total: usize) -> f64 {
    100.0 * hits as f64 / total as f64
}

#[derive(Deserialize)]
struct UapCase {
    ua: String,
    family: String,
}

/// Agreement with uap-core's own conformance tests on the family, which is
/// what we store; versions are not stored.
fn uap_agreement(path: &str, family_of: fn(&UaClass) -> &str) -> f64 {
    let cases: Vec<UapCase> = jsonl(path);
    let agents: Vec<String> = cases.iter().map(|c| c.ua.clone()).collect();
    let classes = classify_all(&agents);
    let mut misses = Vec::new();
    for (case, class) in cases.iter().zip(&classes) {
        if family_of(class) != case.family {
            misses.push(format!(
                "  want {:?} got {:?}: {}",
                case.family,
                family_of(class),
                case.ua
            ));
        }
    }
    let agreement = rate(cases.len() - misses.len(), cases.len());
    println!(
        "{path}: {agreement:.2} % of {} cases agree; first misses:",
        cases.len()
    );
    for miss in misses.iter().take(15) {
        println!("{miss}");
    }
    agreement
}

#[test]
fn browser_family_agrees_with_uap_core_tests() {
    let agreement = uap_agreement("uap-core/test_ua.jsonl.gz", |c| c.browser);
    assert!(
        agreement >= 95.0,
        "browser agreement {agreement:.2} % is below 95 %"
    );
}

#[test]
fn os_family_agrees_with_uap_core_tests() {
    let agreement = uap_agreement("uap-core/test_os.jsonl.gz", |c| c.os);
    assert!(
        agreement >= 95.0,
        "OS agreement {agreement:.2} % is below 95 %"
    );
}

#[derive(Deserialize)]
struct CrawlerEntry {
    instances: Vec<String>,
}

#[derive(Deserialize)]
struct MatomoBot {
    ua: String,
}

/// Every known crawler agent of the corpora, with the corpus it came from.
fn crawler_agents() -> Vec<(&'static str, String)> {
    let mut agents = Vec::new();
    let entries: Vec<CrawlerEntry> = jsonl("crawler-user-agents/instances.jsonl.gz");
    let instances = entries.into_iter().flat_map(|e| e.instances);
    agents.extend(instances.map(|a| ("crawler-user-agents", a)));
    agents.extend(
        lines("crawlerdetect/crawlers.txt.gz")
            .into_iter()
            .map(|a| ("crawlerdetect", a)),
    );
    for path in [
        "is-crawler/crawler_user_agents.txt.gz",
        "is-crawler/crawler_user_agents_pgts.txt.gz",
    ] {
        agents.extend(lines(path).into_iter().map(|a| ("is-crawler", a)));
    }
    let matomo: Vec<MatomoBot> = jsonl("matomo-device-detector/bots.jsonl.gz");
    agents.extend(matomo.into_iter().map(|b| ("matomo", b.ua)));
    agents
}

#[test]
fn crawler_corpora_are_flagged_as_bots() {
    let agents = crawler_agents();
    let texts: Vec<String> = agents.iter().map(|(_, a)| a.clone()).collect();
    let classes = classify_all(&texts);
    let mut per_corpus: Vec<(&str, usize, usize)> = Vec::new();
    let mut missed = Vec::new();
    for ((corpus, agent), class) in agents.iter().zip(&classes) {
        assert_eq!(class.is_bot, class.device == Device::Bot, "{agent}");
        let row = match per_corpus.iter().position(|r| r.0 == *corpus) {
            Some(i) => &mut per_corpus[i],
            None => {
                per_corpus.push((corpus, 0, 0));
                per_corpus.last_mut().expect("just pushed")
            }
        };
        row.2 += 1;
        if class.is_bot {
            row.1 += 1;
        } else {
            missed.push(format!("  {corpus}: {agent}"));
        }
    }
    for (corpus, flagged, total) in &per_corpus {
        println!(
            "{corpus}: {:.2} % of {total} crawler agents flagged",
            rate(*flagged, *total)
        );
    }
    let flagged = classes.iter().filter(|c| c.is_bot).count();
    let overall = rate(flagged, classes.len());
    println!(
        "all crawler corpora: {overall:.2} % of {} flagged; missed:",
        classes.len()
    );
    for miss in missed.iter().take(30) {
        println!("{miss}");
    }
    assert!(
        overall >= 97.0,
        "only {overall:.2} % of crawler agents flagged, want >= 97 %"
    );
}

#[derive(Deserialize)]
struct IntoliAgent {
    ua: String,
    #[serde(rename = "deviceCategory")]
    device_category: String,
}

/// Real browser agents of the corpora, with the corpus each came from.
fn browser_agents() -> Vec<(&'static str, String)> {
    let mut agents = Vec::new();
    agents.extend(
        lines("crawlerdetect/devices.txt.gz")
            .into_iter()
            .map(|a| ("crawlerdetect", a)),
    );
    for path in [
        "is-crawler/browser_user_agents.txt.gz",
        "is-crawler/browser_user_agents_extended.txt.gz",
    ] {
        agents.extend(lines(path).into_iter().map(|a| ("is-crawler", a)));
    }
    let intoli: Vec<IntoliAgent> = jsonl("intoli-user-agents/user-agents.jsonl.gz");
    agents.extend(intoli.into_iter().map(|a| ("intoli", a.ua)));
    agents
}

#[test]
fn browser_agents_are_rarely_flagged_as_bots() {
    let agents = browser_agents();
    let texts: Vec<String> = agents.iter().map(|(_, a)| a.clone()).collect();
    let classes = classify_all(&texts);
    let wrong: Vec<_> = agents
        .iter()
        .zip(&classes)
        .filter(|(_, c)| c.is_bot)
        .collect();
    let share = rate(wrong.len(), agents.len());
    println!(
        "browser corpora: {share:.3} % of {} agents wrongly flagged:",
        agents.len()
    );
    for ((corpus, agent), _) in wrong.iter().take(30) {
        println!("  {corpus}: {agent}");
    }
    assert!(
        share <= 0.5,
        "{share:.3} % of browser agents flagged as bots, want <= 0.5 %"
    );
}

#[test]
fn device_agrees_with_intoli_device_category() {
    let agents: Vec<IntoliAgent> = jsonl("intoli-user-agents/user-agents.jsonl.gz");
    let texts: Vec<String> = agents.iter().map(|a| a.ua.clone()).collect();
    let classes = classify_all(&texts);
    let mut misses = Vec::new();
    for (agent, class) in agents.iter().zip(&classes) {
        if class.device.as_str() != agent.device_category {
            misses.push(format!(
                "  want {} got {:?}: {}",
                agent.device_category, class.device, agent.ua
            ));
        }
    }
    let mut counts = std::collections::BTreeMap::new();
    for (agent, class) in agents.iter().zip(&classes) {
        let key = (agent.device_category.as_str(), class.device.as_str());
        *counts.entry(key).or_insert(0) += 1;
    }
    println!("intoli (deviceCategory, ours): {counts:?}");
    let agreement = rate(agents.len() - misses.len(), agents.len());
    println!(
        "intoli deviceCategory: {agreement:.2} % of {} agree; misses:",
        agents.len()
    );
    for miss in misses.iter().take(40) {
        println!("{miss}");
    }
    assert!(
        agreement >= 95.0,
        "device agreement {agreement:.2} % is below 95 %"
    );
}

/// The extra suites upstream runs too (firefox, opera_mini, podcasting and
/// the 12,500 agents of pgts_browser_list, plus additional_os_tests).
#[test]
fn families_agree_with_uap_core_extra_suites() {
    let browser = uap_agreement("uap-core/test_resources_ua.jsonl.gz", |c| c.browser);
    let os = uap_agreement("uap-core/test_resources_os.jsonl.gz", |c| c.os);
    assert!(
        browser >= 95.0,
        "browser agreement {browser:.2} % is below 95 %"
    );
    assert!(os >= 95.0, "OS agreement {os:.2} % is below 95 %");
}
