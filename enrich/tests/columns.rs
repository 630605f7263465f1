//! The enrichment functions, case by case: every case of
//! `cases/17-enrichment-edge-cases` and the documented rules of each function.

use std::borrow::Cow;

use ecstatic_enrich::{
    FileType, UrlParts, file_type, normalize_country, referrer_host, split_url, status_class,
};

fn parts<'a>(scheme: &'a str, host: &'a str, path: &'a str, query: &'a str) -> UrlParts<'a> {
    UrlParts {
        scheme,
        host,
        path,
        query,
    }
}

#[test]
fn split_url_separates_scheme_host_path_and_query() {
    let cases = [
        ("https://h:443/p?q#f", parts("https", "h", "/p", "q")),
        ("https://example.b-cdn.net/assets/style.css?ver=3", {
            parts("https", "example.b-cdn.net", "/assets/style.css", "ver=3")
        }),
        (
            "https://example.b-cdn.net/",
            parts("https", "example.b-cdn.net", "/", ""),
        ),
        (
            "https://example.b-cdn.net",
            parts("https", "example.b-cdn.net", "/", ""),
        ),
        (
            "https://example.b-cdn.net?x=1",
            parts("https", "example.b-cdn.net", "/", "x=1"),
        ),
        (
            "https://u:pw@Example.COM:8443/A%20b?q",
            parts("https", "Example.COM", "/A%20b", "q"),
        ),
        (
            "http://[2001:db8::1]:8080/x",
            parts("http", "2001:db8::1", "/x", ""),
        ),
        ("http://[2001:db8::1/x", parts("http", "", "/x", "")),
        (
            "android-app://com.google.android.gm/",
            parts("android-app", "com.google.android.gm", "/", ""),
        ),
        (
            "https://e.net/search?tags[]=a&tags[]=b",
            parts("https", "e.net", "/search", "tags[]=a&tags[]=b"),
        ),
        (
            "https://e.net/a?b?c#d?e",
            parts("https", "e.net", "/a", "b?c"),
        ),
        ("https://e.net/#frag", parts("https", "e.net", "/", "")),
    ];
    for (url, want) in cases {
        assert_eq!(split_url(url), want, "{url}");
    }
}

#[test]
fn split_url_takes_text_without_a_scheme_as_path_and_query() {
    assert_eq!(split_url("/p?q"), parts("", "", "/p", "q"));
    assert_eq!(
        split_url("/download?file=report.pdf"),
        parts("", "", "/download", "file=report.pdf")
    );
    assert_eq!(split_url(""), parts("", "", "/", ""));
    assert_eq!(split_url("?q"), parts("", "", "/", "q"));
    // `://` inside the query or after a non-scheme character is not a scheme.
    assert_eq!(
        split_url("/go?u=http://x.org/"),
        parts("", "", "/go", "u=http://x.org/")
    );
    assert_eq!(
        split_url("not a url://x"),
        parts("", "", "not a url://x", "")
    );
    assert_eq!(split_url("1http://x/"), parts("", "", "1http://x/", ""));
}

#[test]
fn referrer_host_follows_case_17() {
    let cases = [
        (
            "android-app://com.google.android.gm/",
            Some("com.google.android.gm"),
        ),
        (
            "https://user:secret@WWW.Example.COM:8443/path?q=1",
            Some("www.example.com"),
        ),
        ("http://[2001:db8::1]:8080/x", Some("2001:db8::1")),
        ("not a url", None),
        ("-", None),
        ("", None),
        ("https://www.example.org", Some("www.example.org")),
        (
            "https://www.example.com/[draft]/post",
            Some("www.example.com"),
        ),
    ];
    for (referer, want) in cases {
        assert_eq!(referrer_host(referer).as_deref(), want, "{referer:?}");
    }
}

#[test]
fn referrer_host_rejects_what_is_not_a_host() {
    for referer in [
        "/relative/path",
        "file:///etc/passwd",
        "https://",
        "https://exa mple.com/",
        "https://a\"b/",
        "https://<script>/",
        "mailto:someone@example.com",
        "www.example.com",
    ] {
        assert_eq!(referrer_host(referer), None, "{referer:?}");
    }
}

#[test]
fn referrer_host_borrows_when_already_lower_case() {
    assert!(matches!(
        referrer_host("https://www.example.org/x"),
        Some(Cow::Borrowed(_))
    ));
    assert!(matches!(
        referrer_host("https://WWW.example.org/x"),
        Some(Cow::Owned(_))
    ));
    assert_eq!(
        referrer_host("https://BÜCHER.example/").as_deref(),
        Some("bücher.example")
    );
}

#[test]
fn file_type_follows_case_17() {
    let cases = [
        // The query string is not part of the path.
        (
            split_url("https://example.b-cdn.net/assets/style.css?ver=3").path,
            FileType::Style,
        ),
        // Only the last segment counts, not the `gridstack.js` directory.
        (
            "/libs/gridstack.js/0.4.0/gridstack-extra.min.css",
            FileType::Style,
        ),
        // Extensions compare ignoring case.
        ("/video/Intro.MP4", FileType::Video),
        // `.pdf` in the query does not count.
        (
            split_url("https://example.b-cdn.net/download?file=report.pdf").path,
            FileType::Page,
        ),
        ("/", FileType::Page),
        ("/backup/site.tar.gz", FileType::Archive),
    ];
    for (path, want) in cases {
        assert_eq!(file_type(path), want, "{path}");
    }
}

#[test]
fn file_type_documented_rules() {
    let cases = [
        ("", FileType::Page),
        ("/blog/", FileType::Page),
        ("/blog/post", FileType::Page),
        ("/index.html", FileType::Page),
        ("/INDEX.HTM", FileType::Page),
        ("/cart.php", FileType::Page),
        ("/a.jsp;jsessionid=ABC.def", FileType::Page),
        ("/releases/1.2", FileType::Page),
        ("/download?file=report.pdf", FileType::Page),
        ("/app.min.js", FileType::Script),
        ("/app.mjs", FileType::Script),
        ("/img/logo.png", FileType::Image),
        ("/img/x.webp", FileType::Image),
        ("/y.svg", FileType::Image),
        ("/z.gif", FileType::Image),
        ("/favicon.ico", FileType::Image),
        ("/fonts/a.woff2", FileType::Font),
        ("/docs/manual.pdf", FileType::Document),
        ("/ok.txt", FileType::Document),
        ("/x.tar.bz2", FileType::Archive),
        ("/x.zip", FileType::Archive),
        ("/song.mp3", FileType::Audio),
        ("/video.mp4", FileType::Video),
        ("/live/index.m3u8", FileType::Video),
        ("/feed.xml", FileType::Feed),
        ("/index.xml", FileType::Feed),
        ("/blog.rss", FileType::Feed),
        ("/sitemap.xml", FileType::Data),
        ("/api/data.json", FileType::Data),
        ("/site.webmanifest", FileType::Data),
        ("/.env", FileType::Other),
        ("/x.unknownext", FileType::Other),
        ("/x.", FileType::Page),
        ("/x.averyveryverylongextension", FileType::Other),
    ];
    for (path, want) in cases {
        assert_eq!(file_type(path), want, "{path}");
    }
}

#[test]
fn file_type_names_are_lower_case() {
    let all = [
        FileType::Page,
        FileType::Image,
        FileType::Script,
        FileType::Style,
        FileType::Font,
        FileType::Document,
        FileType::Archive,
        FileType::Audio,
        FileType::Video,
        FileType::Feed,
        FileType::Data,
        FileType::Other,
    ];
    let names: Vec<_> = all.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "page", "image", "script", "style", "font", "document", "archive", "audio", "video",
            "feed", "data", "other"
        ]
    );
}

#[test]
fn status_class_by_hundreds() {
    let cases = [
        (0, "other"),
        (99, "other"),
        (100, "1xx"),
        (101, "1xx"),
        (200, "2xx"),
        (206, "2xx"),
        (304, "3xx"),
        (404, "4xx"),
        (499, "4xx"),
        (503, "5xx"),
        (599, "5xx"),
        (600, "other"),
        (u16::MAX, "other"),
    ];
    for (status, want) in cases {
        assert_eq!(status_class(status), want, "{status}");
    }
}

#[test]
fn normalize_country_keeps_two_letters_only() {
    assert_eq!(normalize_country("DE"), Some(*b"DE"));
    assert_eq!(normalize_country("pl"), Some(*b"PL"));
    assert_eq!(normalize_country("gB"), Some(*b"GB"));
    for code in ["", "-", "XXX", "D", "1A", "A1", "  ", "D ", "É"] {
        assert_eq!(normalize_country(code), None, "{code:?}");
    }
}
