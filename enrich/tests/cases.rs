//! The user agents of the field cases in `../shared/data/cases` (copied here
//! as literals) come out as their `case.md` says.

use ecstatic_enrich::{Device, MAX_UA_BYTES, UaClass, UaClassifier};

fn classify(agent: &str) -> UaClass {
    let classifier = UaClassifier::new(16);
    let cached = classifier.classify(agent);
    let uncached = classifier.classify_uncached(agent);
    assert_eq!(cached, uncached, "{agent}");
    uncached
}

fn assert_class(agent: &str, browser: Option<&str>, os: &str, device: Device) {
    let class = classify(agent);
    if let Some(browser) = browser {
        assert_eq!(class.browser, browser, "{agent}");
    }
    assert_eq!(class.os, os, "{agent}");
    assert_eq!(class.device, device, "{agent}");
    assert!(!class.is_bot, "{agent}");
}

const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5.1 Mobile/15E148 Safari/604.1";
const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// Case 17: mobile agents carrying words like "search", "admin" or "watch"
/// used to be flagged as bots by isbot (omrilotan/isbot #269).
#[test]
fn case_17_mobile_agents_with_bot_like_words_are_people() {
    let huawei_webview = "Mozilla/5.0 (Linux; Android 10; STK-L21 Build/HUAWEISTK-L21; wv) \
        AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.186 Mobile \
        Safari/537.36HiSearch/22.0.6.315";
    assert_class(huawei_webview, None, "Android", Device::Mobile);
    let page_admin = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21F90 [FBAN/FBPageAdmin;\
        FBAV/400.0.0.21.108;FBBV/620787505;FBDV/iPhone15,3;FBMD/iPhone;FBSN/iOS;FBSV/17.5.1;\
        FBSS/3;FBID/phone;FBLC/en_GB;FBOP/5;FBRV/0]";
    assert_class(page_admin, None, "iOS", Device::Mobile);
    let airwatch = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Version/17.5.1 \
        Safari/605.1.15 (AirWatch Browser v24.06)";
    assert_class(airwatch, None, "iOS", Device::Mobile);
    assert_class(CHROME_WINDOWS, Some("Chrome"), "Windows", Device::Desktop);
}

#[test]
fn case_17_crawlers_are_bots() {
    for agent in [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    ] {
        let class = classify(agent);
        assert!(class.is_bot, "{agent}");
        assert_eq!(class.device, Device::Bot, "{agent}");
    }
}

/// Case 09: `-` and the empty agent are the same unknown client, and a Go
/// library once panicked on the empty string (mssola/user_agent #7).
#[test]
fn case_09_dash_and_empty_agents_are_unknown_alike() {
    let dash = classify("-");
    assert_eq!(dash, classify(""));
    assert_eq!(dash.browser, "Other");
    assert_eq!(dash.os, "Other");
    assert_eq!(dash.device, Device::Other);
    assert!(!dash.is_bot);
    assert_class(CHROME_WINDOWS, Some("Chrome"), "Windows", Device::Desktop);
}

#[test]
fn case_01_and_05_agents() {
    assert_class(CHROME_WINDOWS, Some("Chrome"), "Windows", Device::Desktop);
    assert_class(SAFARI_IPHONE, Some("Mobile Safari"), "iOS", Device::Mobile);
    assert_class(FIREFOX_LINUX, Some("Firefox"), "Linux", Device::Desktop);
    let facebook_ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21F90 [FBAN/FBIOS;FBAV/401.0.0.22.105;\
        FBBV/621000001;FBDV/iPhone15,3;FBMD/iPhone;FBSN/iOS;FBSV/17.5.1;FBSS/3;FBID/phone;\
        FBLC/en_GB;FBOP/5;FBRV/0]";
    assert_class(facebook_ios, Some("Facebook"), "iOS", Device::Mobile);
}

/// Deterministic "random" alphanumerics, like case 18's `PowerApp_` token.
fn noise(len: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALNUM[(state % ALNUM.len() as u64) as usize])
        })
        .collect()
}

/// Case 18: agents of thousands of bytes hung or slowed other parsers
/// (Mobile-Detect #441, yauaa #60); only the first `MAX_UA_BYTES` count.
#[test]
fn case_18_long_agents_are_classified_by_their_prefix() {
    let toolbar = format!(
        "Mozilla/5.0 (Windows NT 6.1; rv:32.0) Gecko/20100101 Firefox/32.0{}",
        " BLNGBAR".repeat(2000)
    );
    assert_eq!(toolbar.len(), 16065);
    assert_class(&toolbar, Some("Firefox"), "Windows", Device::Desktop);

    let app = format!(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 9_1 like Mac OS X) AppleWebKit/601.1.46 \
         (KHTML, like Gecko) Mobile/13B143;PowerApp_{};shopapp",
        noise(4000)
    );
    assert_eq!(app.len(), 4126);
    assert_class(&app, None, "iOS", Device::Mobile);

    let webview = format!(
        "Mozilla/5.0 (Linux; Android 9; SM-G975U Build/PPR1.180610.011; wv) \
         AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/77.0.3865.92 Mobile \
         Safari/537.36{}{}x",
        ";".repeat(3000),
        " ".repeat(3000)
    );
    assert_eq!(webview.len(), 6159);
    assert_class(&webview, None, "Android", Device::Mobile);
}

/// The cut never splits a UTF-8 sequence, and what lies past it is ignored.
#[test]
fn cut_respects_char_boundaries() {
    let classifier = UaClassifier::new(16);
    for pad in 0..4 {
        let head = format!("{}{}", "x".repeat(MAX_UA_BYTES - 2 - pad), "é".repeat(4));
        let a = classifier.classify_uncached(&format!("{head}Googlebot/2.1"));
        let b = classifier.classify_uncached(&head);
        assert_eq!(a, b);
    }
    let bot_after_cut = format!("{}{}", CHROME_WINDOWS, " x".repeat(MAX_UA_BYTES));
    assert!(
        !classifier
            .classify(&format!("{bot_after_cut} Googlebot/2.1"))
            .is_bot
    );
}

#[test]
fn device_names() {
    let names: Vec<_> = [
        Device::Desktop,
        Device::Mobile,
        Device::Tablet,
        Device::Bot,
        Device::Other,
    ]
    .iter()
    .map(|d| d.as_str())
    .collect();
    assert_eq!(names, ["desktop", "mobile", "tablet", "bot", "other"]);
}

#[test]
fn tablets() {
    let ipad = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
        (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    assert_class(ipad, Some("Mobile Safari"), "iOS", Device::Tablet);
    let galaxy_tab = "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    assert_class(galaxy_tab, Some("Chrome"), "Android", Device::Tablet);
}

#[test]
fn devices_beyond_phones_and_tablets() {
    let surface = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.2; WOW64; Trident/7.0; \
        .NET4.0E; .NET4.0C; Tablet PC 2.0)";
    assert_class(surface, None, "Windows", Device::Desktop);
    let xbox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edge/44.18363.8131";
    assert_class(xbox, None, "Windows", Device::Other);
    let android_app = "Dalvik/2.1.0 (Linux; U; Android 13; SM-S911B Build/TP1A.220624.014)";
    assert_class(android_app, None, "Android", Device::Mobile);
    let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
        (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
    assert_class(mac, Some("Safari"), "Mac OS X", Device::Desktop);
}

#[test]
fn classifier_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UaClassifier>();
    let classifier = UaClassifier::new(4);
    let agents = [CHROME_WINDOWS, SAFARI_IPHONE, FIREFOX_LINUX, "curl/8.5.0"];
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for agent in agents.iter().cycle().take(200) {
                    assert_eq!(
                        classifier.classify(agent),
                        classifier.classify_uncached(agent)
                    );
                }
            });
        }
    });
}
