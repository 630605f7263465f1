//! The `file_type` column, from the extension of a URL path.

/// What kind of file a request asked for, from its path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// No extension, a trailing `/`, or a server-side page (`.html`, `.php`, …).
    Page,
    Image,
    Script,
    Style,
    Font,
    Document,
    /// Archives and installable packages (`.zip`, `.tar.gz`, `.dmg`, `.apk`, …).
    Archive,
    Audio,
    /// Video files and streaming playlists and segments (`.m3u8`, `.ts`, `.mpd`).
    Video,
    /// `.rss`, `.atom`, and `feed.xml`, `rss.xml`, `atom.xml`, `index.xml`.
    Feed,
    /// Structured data: `.json`, `.xml`, `.csv`, `.map`, `.webmanifest`, …
    Data,
    /// An extension not in the tables.
    Other,
}

impl FileType {
    /// The stored name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Page => "page",
            FileType::Image => "image",
            FileType::Script => "script",
            FileType::Style => "style",
            FileType::Font => "font",
            FileType::Document => "document",
            FileType::Archive => "archive",
            FileType::Audio => "audio",
            FileType::Video => "video",
            FileType::Feed => "feed",
            FileType::Data => "data",
            FileType::Other => "other",
        }
    }
}

/// The longest extension in the tables (`webmanifest`); longer is `Other`.
const MAX_EXTENSION_BYTES: usize = 11;

/// Classifies a URL path by the extension of its last segment.
///
/// - Only the last segment counts: `/libs/gridstack.js/0.4.0/x.min.css` is a
///   style sheet.
/// - The query string is not part of the path: pass `/download`, not
///   `/download?file=report.pdf`. (A `?` or `#` that does arrive ends the path
///   all the same, and so does a `;` of path parameters, as in
///   `/a.jsp;jsessionid=1`.)
/// - Extensions compare ignoring ASCII case: `Intro.MP4` is a video.
/// - Multi-part extensions go by their last part: `site.tar.gz` is an archive
///   (as `gz`), `app.min.js` a script.
/// - No extension, an empty one (`/x.`), a trailing `/`, or an all-digit
///   "extension" (`/releases/1.2`) is a page, and so are `.html`, `.htm`, `.php`, `.asp`,
///   `.aspx`, `.jsp` and the like.
/// - A known extension of another kind gives that kind; anything else is
///   `Other` (including a name that is only an extension, like `/.env`).
pub fn file_type(path: &str) -> FileType {
    let end = memchr::memchr3(b'?', b'#', b';', path.as_bytes()).unwrap_or(path.len());
    let path = &path[..end];
    let name = match memchr::memrchr(b'/', path.as_bytes()) {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let Some(dot) = memchr::memrchr(b'.', name.as_bytes()) else {
        return FileType::Page;
    };
    let (stem, ext) = (&name[..dot], &name[dot + 1..]);
    if ext.bytes().all(|b| b.is_ascii_digit()) {
        return FileType::Page;
    }
    if ext.len() > MAX_EXTENSION_BYTES {
        return FileType::Other;
    }
    let mut lower = [0u8; MAX_EXTENSION_BYTES];
    let lower = &mut lower[..ext.len()];
    lower.copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    if lower == b"xml" && is_feed_stem(stem) {
        return FileType::Feed;
    }
    by_extension(lower)
}

/// The usual names of a site's feed when it ends in `.xml` (Hugo writes
/// `index.xml`, Jekyll `feed.xml`).
fn is_feed_stem(stem: &str) -> bool {
    ["feed", "rss", "atom", "index"]
        .iter()
        .any(|s| stem.eq_ignore_ascii_case(s))
}

fn by_extension(ext: &[u8]) -> FileType {
    match ext {
        b"html" | b"htm" | b"xhtml" | b"shtml" | b"php" | b"asp" | b"aspx" | b"jsp" | b"cfm"
        | b"cgi" => FileType::Page,
        b"png" | b"jpg" | b"jpeg" | b"jpe" | b"gif" | b"webp" | b"avif" | b"svg" | b"svgz"
        | b"ico" | b"cur" | b"bmp" | b"tif" | b"tiff" | b"heic" | b"heif" | b"jxl" | b"apng" => {
            FileType::Image
        }
        b"js" | b"mjs" | b"cjs" | b"wasm" => FileType::Script,
        b"css" => FileType::Style,
        b"woff" | b"woff2" | b"ttf" | b"otf" | b"eot" => FileType::Font,
        b"pdf" | b"txt" | b"md" | b"rtf" | b"doc" | b"docx" | b"xls" | b"xlsx" | b"ppt"
        | b"pptx" | b"odt" | b"ods" | b"odp" | b"epub" => FileType::Document,
        b"zip" | b"gz" | b"tgz" | b"bz2" | b"xz" | b"zst" | b"7z" | b"rar" | b"tar" | b"dmg"
        | b"iso" | b"exe" | b"msi" | b"apk" | b"deb" | b"rpm" | b"jar" => FileType::Archive,
        b"mp3" | b"wav" | b"ogg" | b"oga" | b"opus" | b"flac" | b"aac" | b"m4a" | b"weba"
        | b"mid" | b"midi" => FileType::Audio,
        b"mp4" | b"m4v" | b"webm" | b"mov" | b"mkv" | b"avi" | b"ogv" | b"wmv" | b"flv"
        | b"3gp" | b"m3u8" | b"ts" | b"mpd" => FileType::Video,
        b"rss" | b"atom" => FileType::Feed,
        b"json" | b"jsonld" | b"geojson" | b"xml" | b"csv" | b"tsv" | b"yaml" | b"yml"
        | b"toml" | b"map" | b"webmanifest" | b"ics" => FileType::Data,
        _ => FileType::Other,
    }
}
