//! User agents: real browsers weighted as they are seen, plus crawlers.

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use flate2::read::GzDecoder;
use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use serde::Deserialize;

/// The Intoli corpus (npm `user-agents` 2.1.198, BSD-2-Clause; see
/// `testdata/agents/`): 10,000 real browser agents with the share of traffic
/// each was seen in. Embedded so that `ecstatic-loadgen` runs from anywhere.
const INTOLI_GZ: &[u8] = include_bytes!("../../testdata/agents/user-agents.json.gz");

/// A crawler that the generator mixes into the stream.
#[derive(Debug, Clone, Copy)]
pub struct Crawler {
    /// The exact `User-Agent` it sends.
    pub user_agent: &'static str,
    /// The /24 networks it crawls from, so IP-based bot checks can match.
    pub network: [u8; 3],
    /// Relative weight among crawlers.
    pub weight: u32,
}

/// Well-known crawlers and HTTP libraries, weighted roughly as they show up
/// in small sites' logs. The networks are inside the operators' published
/// ranges (Google's `googlebot.json`, Bing's `bingbot.json`, OpenAI's
/// `gptbot.json`, …); the rest use documentation ranges.
const CRAWLERS: &[Crawler] = &[
    Crawler {
        user_agent: "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) \
            AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 \
            (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        network: [66, 249, 66],
        weight: 30,
    },
    Crawler {
        user_agent: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        network: [66, 249, 68],
        weight: 10,
    },
    Crawler {
        user_agent: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; \
            +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        network: [157, 55, 39],
        weight: 15,
    },
    Crawler {
        user_agent: "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        network: [54, 36, 148],
        weight: 10,
    },
    Crawler {
        user_agent: "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        network: [185, 191, 171],
        weight: 8,
    },
    Crawler {
        user_agent: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; \
            +https://openai.com/gptbot)",
        network: [20, 171, 207],
        weight: 6,
    },
    Crawler {
        user_agent: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; \
            +claudebot@anthropic.com)",
        network: [198, 51, 100],
        weight: 5,
    },
    Crawler {
        user_agent: "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        network: [5, 255, 231],
        weight: 4,
    },
    Crawler {
        user_agent: "Mozilla/5.0 (compatible; Baiduspider/2.0; \
            +http://www.baidu.com/search/spider.html)",
        network: [220, 181, 108],
        weight: 2,
    },
    Crawler {
        user_agent: "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
        network: [20, 191, 45],
        weight: 2,
    },
    Crawler {
        user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
            (KHTML, like Gecko) Version/13.1.2 Safari/605.1.15 (Applebot/0.1; \
            +http://www.apple.com/go/applebot)",
        network: [17, 241, 219],
        weight: 2,
    },
    Crawler {
        user_agent: "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        network: [69, 171, 249],
        weight: 3,
    },
    Crawler {
        user_agent: "Twitterbot/1.0",
        network: [199, 16, 157],
        weight: 1,
    },
    Crawler {
        user_agent: "curl/8.5.0",
        network: [203, 0, 113],
        weight: 2,
    },
    Crawler {
        user_agent: "python-requests/2.32.3",
        network: [192, 0, 2],
        weight: 2,
    },
    Crawler {
        user_agent: "Go-http-client/1.1",
        network: [198, 18, 0],
        weight: 1,
    },
];

/// A source of user agents to draw from.
#[derive(Debug)]
pub struct AgentPool {
    browsers: Vec<String>,
    weights: Vec<f64>,
    browser_index: WeightedIndex<f64>,
    crawler_index: WeightedIndex<u32>,
}

#[derive(Deserialize)]
struct IntoliEntry {
    #[serde(rename = "userAgent")]
    user_agent: String,
    weight: f64,
}

impl AgentPool {
    /// The embedded Intoli corpus and the built-in crawlers, loaded once.
    pub fn intoli() -> &'static AgentPool {
        static POOL: OnceLock<AgentPool> = OnceLock::new();
        POOL.get_or_init(|| {
            Self::from_intoli_gz(INTOLI_GZ).expect("the embedded Intoli corpus is valid")
        })
    }

    /// Reads a gzipped Intoli `user-agents.json` (an array of objects with
    /// `userAgent` and `weight`).
    pub fn from_intoli_gz(gz: &[u8]) -> Result<AgentPool, AgentPoolError> {
        let mut json = Vec::new();
        GzDecoder::new(gz)
            .read_to_end(&mut json)
            .map_err(AgentPoolError::Gzip)?;
        let entries: Vec<IntoliEntry> =
            serde_json::from_slice(&json).map_err(AgentPoolError::Json)?;

        let browser_index = WeightedIndex::new(entries.iter().map(|entry| entry.weight))
            .map_err(|_| AgentPoolError::Weights)?;
        let crawler_index = WeightedIndex::new(CRAWLERS.iter().map(|crawler| crawler.weight))
            .expect("crawler weights are positive");
        let weights = entries.iter().map(|entry| entry.weight).collect();
        let browsers = entries.into_iter().map(|entry| entry.user_agent).collect();
        Ok(AgentPool {
            browsers,
            weights,
            browser_index,
            crawler_index,
        })
    }

    /// A browser agent, drawn by how often it is seen.
    pub fn browser<R: Rng + ?Sized>(&self, rng: &mut R) -> &str {
        &self.browsers[self.browser_index.sample(rng)]
    }

    /// A crawler, drawn by weight.
    pub fn crawler<R: Rng + ?Sized>(&self, rng: &mut R) -> &'static Crawler {
        &CRAWLERS[self.crawler_index.sample(rng)]
    }

    /// Every browser agent of the pool.
    pub fn browsers(&self) -> impl Iterator<Item = &str> {
        self.browsers.iter().map(String::as_str)
    }

    /// Every browser agent with its share of traffic (the shares sum to 1).
    pub fn weighted_browsers(&self) -> impl Iterator<Item = (&str, f64)> {
        self.browsers().zip(self.weights.iter().copied())
    }

    /// Every built-in crawler.
    pub fn crawlers() -> &'static [Crawler] {
        CRAWLERS
    }
}

impl Crawler {
    /// An address of the crawler's network, anonymised to its /24.
    pub fn address(&self) -> Ipv4Addr {
        let [a, b, c] = self.network;
        Ipv4Addr::new(a, b, c, 0)
    }
}

/// Why a user-agent corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AgentPoolError {
    #[error("user-agent corpus is not valid gzip")]
    Gzip(#[source] std::io::Error),
    #[error("user-agent corpus is not an array of `{{userAgent, weight}}` objects")]
    Json(#[source] serde_json::Error),
    #[error("user-agent corpus weights are empty, negative or not finite")]
    Weights,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn intoli_corpus_loads_all_entries() {
        let pool = AgentPool::intoli();
        assert_eq!(pool.browsers().count(), 10_000);
        assert!(
            pool.browsers()
                .all(|agent| !agent.is_empty() && !agent.contains('|'))
        );
    }

    #[test]
    fn draws_follow_weights() {
        // The heavier half of the corpus carries about 61 % of the weight; a
        // uniform draw would land there 50 % of the time.
        let pool = AgentPool::intoli();
        let mut sorted = pool.weights.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let heavy_share: f64 = pool.weights.iter().filter(|&&w| w >= median).sum::<f64>()
            / pool.weights.iter().sum::<f64>();

        let mut rng = SmallRng::seed_from_u64(7);
        let draws = 200_000;
        let heavy = (0..draws)
            .filter(|_| pool.weights[pool.browser_index.sample(&mut rng)] >= median)
            .count();
        let observed = heavy as f64 / f64::from(draws);
        assert!(heavy_share > 0.58, "heavy half carries {heavy_share}");
        assert!(
            (observed - heavy_share).abs() < 0.01,
            "{observed} vs {heavy_share}"
        );
    }

    #[test]
    fn crawler_agents_have_no_pipes_and_valid_networks() {
        for crawler in AgentPool::crawlers() {
            assert!(!crawler.user_agent.contains('|'));
            assert!(!crawler.user_agent.contains("  "), "{}", crawler.user_agent);
            assert_eq!(crawler.address().octets()[3], 0);
        }
    }
}
