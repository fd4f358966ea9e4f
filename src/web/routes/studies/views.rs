//! The study pages' models: every value the templates print, computed once. Templates escape
//! every field (descriptions and paths come from files); nothing is marked safe.

use askama::Template;

use crate::app::buckets::size::human;
use crate::app::studies::index::IndexState;
use crate::app::studies::query::{
    FilePage, ListPage, Series, StudyDetail, StudyFile, StudyList, StudySummary,
};
use crate::infra::dicom::PatientAttributes;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

/// A DICOM date (`YYYYMMDD`) as `YYYY-MM-DD`; anything else as it came.
pub fn dicom_date(raw: &str) -> String {
    if raw.len() == 8 && raw.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &raw[..4], &raw[4..6], &raw[6..])
    } else {
        raw.to_string()
    }
}

pub struct StudyRow {
    pub href: String,
    pub uid: String,
    pub date: Option<String>,
    pub description: String,
    pub modalities: String,
    pub series: u64,
    pub instances: u64,
    pub size: String,
    pub size_bytes: u64,
    pub uploaded: Option<Timestamp>,
    pub uploaders: String,
    pub complete: bool,
    pub missing: usize,
}

impl StudyRow {
    pub fn new(s: &StudySummary) -> Self {
        Self {
            href: format!("/studies/{}", s.study_uid),
            uid: s.study_uid.clone(),
            date: s.study_date.as_deref().map(dicom_date),
            description: s
                .description
                .clone()
                .unwrap_or_else(|| "(no description)".into()),
            modalities: s.modalities.join(", "),
            series: s.series,
            instances: s.instances,
            size: human(s.bytes),
            size_bytes: s.bytes,
            uploaded: s.first_upload.map(Timestamp::minutes),
            uploaders: s.uploaders.join(", "),
            complete: s.complete(),
            missing: s.missing,
        }
    }
}

#[derive(Template)]
#[template(path = "studies.html")]
pub struct StudiesPage {
    pub layout: Layout,
    pub rows: Vec<StudyRow>,
    pub total: u64,
    pub show_uploader: bool,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    /// Which studies the page shows, when they take more than one page.
    pub range: Option<String>,
}

impl StudiesPage {
    pub fn new(layout: Layout, list: &StudyList, show_uploader: bool) -> Self {
        let (prev_href, next_href, range) = Pager {
            href: "/studies",
            offset: list.page.offset,
            size: ListPage::SIZE,
            total: list.total,
            shown: list.studies.len() as u64,
            what: "studies",
        }
        .links();
        Self {
            layout,
            rows: list.studies.iter().map(StudyRow::new).collect(),
            total: list.total,
            show_uploader,
            prev_href,
            next_href,
            range,
        }
    }
}

pub struct SeriesRow {
    pub number: String,
    pub description: String,
    pub modality: String,
    pub instances: u64,
    pub size: String,
    pub uid: String,
}

impl SeriesRow {
    fn new(s: &Series) -> Self {
        Self {
            number: s.number.map(|n| n.to_string()).unwrap_or_default(),
            description: s.description.clone().unwrap_or_default(),
            modality: s.modality.clone().unwrap_or_default(),
            instances: s.instances,
            size: human(s.bytes),
            uid: s.series_uid.clone(),
        }
    }
}

pub struct FileRow {
    pub href: String,
    /// The path it was sent under, or its name.
    pub name: String,
    pub series: String,
    pub instance: String,
    pub size: String,
    pub sha_short: String,
    pub sha256: String,
    pub scan: &'static str,
    pub state: &'static str,
    pub badge: &'static str,
    pub detail: String,
    pub sop: String,
}

impl FileRow {
    fn new(f: &StudyFile) -> Self {
        let badge = match (f.counted(), f.state) {
            (true, _) => "badge-ok",
            (false, Some(IndexState::Duplicate)) => "badge-muted",
            (false, Some(IndexState::Indexed)) => "badge-muted",
            _ => "badge-bad",
        };
        let state = match (f.counted(), f.state) {
            (false, Some(IndexState::Indexed)) => {
                f.status.map(|s| s.label()).unwrap_or("Not stored")
            }
            (_, Some(state)) => state.label(),
            (_, None) => "Unknown",
        };
        let sha = f.sha256.clone().unwrap_or_default();
        Self {
            href: format!("/uploads/{}", f.upload_id),
            name: f
                .relative_path
                .clone()
                .unwrap_or_else(|| f.filename.clone()),
            series: f.series_number.map(|n| n.to_string()).unwrap_or_default(),
            instance: f.instance_number.map(|n| n.to_string()).unwrap_or_default(),
            size: human(f.size),
            sha_short: sha.get(..12).map(|s| format!("{s}…")).unwrap_or_default(),
            sha256: sha,
            scan: f.scan.map(|s| s.label()).unwrap_or("—"),
            state,
            badge,
            detail: f.detail.clone().unwrap_or_default(),
            sop: f.sop_instance_uid.clone().unwrap_or_default(),
        }
    }
}

/// Patient attributes as the PHI panel lists them: (label, value) where present.
fn patient_rows(p: &PatientAttributes) -> Vec<(&'static str, String)> {
    [
        (
            "Patient name",
            p.patient_name.as_ref().map(|n| n.replace('^', " ")),
        ),
        ("Patient ID", p.patient_id.clone()),
        (
            "Birth date",
            p.patient_birth_date.as_deref().map(dicom_date),
        ),
        ("Sex", p.patient_sex.clone()),
        ("Accession number", p.accession_number.clone()),
        (
            "Referring physician",
            p.referring_physician_name
                .as_ref()
                .map(|n| n.replace('^', " ")),
        ),
        ("Institution", p.institution_name.clone()),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.map(|v| (label, v)))
    .collect()
}

#[derive(Template)]
#[template(path = "study.html")]
pub struct StudyPage {
    pub layout: Layout,
    pub study: StudyRow,
    pub series: Vec<SeriesRow>,
    pub files: Vec<FileRow>,
    /// Which files the page shows, when they take more than one page.
    pub files_range: Option<String>,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    pub problems: Vec<FileRow>,
    pub missing: Vec<String>,
    pub directories: usize,
    /// `None` when the viewer may not see patient attributes; empty when there are none.
    pub patient: Option<Vec<(&'static str, String)>>,
    pub show_uploader: bool,
    pub zip_href: Option<String>,
}

impl StudyPage {
    pub fn new(layout: Layout, d: &StudyDetail, show_uploader: bool, may_fetch: bool) -> Self {
        let study = StudyRow::new(&d.summary);
        let (prev_href, next_href, files_range) = Pager {
            href: &study.href,
            offset: d.page.offset,
            size: FilePage::SIZE,
            total: d.summary.instances,
            shown: d.files.len() as u64,
            what: "stored instances",
        }
        .links();
        Self {
            prev_href,
            next_href,
            files_range,
            layout,
            zip_href: (may_fetch && d.summary.instances > 0)
                .then(|| format!("{}/archive", study.href)),
            study,
            series: d.series.iter().map(SeriesRow::new).collect(),
            files: d.instances().map(FileRow::new).collect(),
            problems: d.problems().map(FileRow::new).collect(),
            missing: d.missing.clone(),
            directories: d.directories.len(),
            patient: d.patient.as_ref().map(patient_rows),
            show_uploader,
        }
    }
}

/// A list shown `size` at a time under `href?page=N`.
struct Pager<'a> {
    href: &'a str,
    offset: u64,
    size: u64,
    total: u64,
    shown: u64,
    /// What the list holds, plural.
    what: &'a str,
}

impl Pager<'_> {
    /// Links to the neighbouring pages, and which items this page shows, when the list
    /// takes more than one page.
    fn links(&self) -> (Option<String>, Option<String>, Option<String>) {
        let (total, size, offset, what) = (self.total, self.size, self.offset, self.what);
        if total <= size && offset == 0 {
            return (None, None, None);
        }
        let number = offset / size + 1;
        let link = |n: u64| match n {
            1 => self.href.to_string(),
            n => format!("{}?page={n}", self.href),
        };
        let prev = (number > 1).then(|| link(number - 1));
        let next = (offset + size < total).then(|| link(number + 1));
        let range = match self.shown {
            0 => format!("Page {number} is past the last of the {total} {what}."),
            shown => format!(
                "Showing {what} {}–{} of {total}.",
                offset + 1,
                offset + shown
            ),
        };
        (prev, next, Some(range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_dates_read_as_iso_dates_and_odd_ones_pass_through() {
        assert_eq!(dicom_date("20261201"), "2026-12-01");
        assert_eq!(dicom_date("2026"), "2026");
    }
}
