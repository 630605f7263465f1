//! The `file_type` column, from the extension of a URL path.

/// What kind of file a request asked for, from its path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Page,
    Image,
    Script,
    Style,
    Font,
    Document,
    Archive,
    Audio,
    Video,
    Feed,
    Data,
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

/// Classifies a URL path (without its query string).
pub fn file_type(path: &str) -> FileType {
    let last = match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let Some(dot) = last.rfind('.') else {
        return FileType::Page;
    };
    let ext = &last[dot + 1..];
    if ext.is_empty() || ext.len() > 8 {
        return FileType::Other;
    }
    let mut buf = [0u8; 8];
    for (d, s) in buf.iter_mut().zip(ext.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    match &buf[..ext.len()] {
        b"html" | b"htm" | b"php" => FileType::Page,
        b"css" => FileType::Style,
        b"js" | b"mjs" => FileType::Script,
        b"png" | b"jpg" | b"jpeg" | b"gif" | b"webp" | b"svg" | b"ico" | b"avif" => FileType::Image,
        b"mp4" | b"webm" => FileType::Video,
        b"gz" | b"zip" => FileType::Archive,
        b"pdf" => FileType::Document,
        _ => FileType::Other,
    }
}
