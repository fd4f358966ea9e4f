//! DICOM test files, written with dicom-rs (the same crate the server reads them with is
//! fine here: the server's reading is what is tested, and the pydicom file-set test covers
//! files from a library we did not write), and folder uploads over tus.

use dicom_core::{DataElement, PrimitiveValue, VR, value::DataSetSequence};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use crate::tus_support::Tus;

/// The patient name every generated instance carries, to grep for.
pub const PATIENT: &str = "MEDPORT^SYNTHETIC^PATIENT";

/// One instance to write. `pixels` bytes of Pixel Data follow the header.
#[derive(Debug, Clone)]
pub struct Instance {
    pub study: String,
    pub series: String,
    pub sop: String,
    pub modality: &'static str,
    pub series_number: i32,
    pub instance_number: i32,
    pub patient: &'static str,
    pub patient_id: &'static str,
    pub accession: &'static str,
    /// StudyDate, `YYYYMMDD`.
    pub date: &'static str,
    pub pixels: usize,
}

impl Instance {
    /// Instance `n` of series `series_number` in `study` (UIDs derived from them).
    pub fn of(study: &str, series_number: i32, n: i32) -> Self {
        Self {
            study: study.to_string(),
            series: format!("{study}.{series_number}"),
            sop: format!("{study}.{series_number}.{n}"),
            modality: if series_number % 2 == 0 { "MR" } else { "CT" },
            series_number,
            instance_number: n,
            patient: PATIENT,
            patient_id: "SYNTH-PID-1",
            accession: "ACC-SYNTH-1",
            date: "20261201",
            pixels: 512,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
        let object = InMemDicomObject::from_element_iter([
            text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
            text(tags::SOP_INSTANCE_UID, VR::UI, &self.sop),
            text(tags::STUDY_DATE, VR::DA, self.date),
            text(tags::ACCESSION_NUMBER, VR::SH, self.accession),
            text(tags::MODALITY, VR::CS, self.modality),
            text(tags::STUDY_DESCRIPTION, VR::LO, "Synthetic study"),
            text(tags::SERIES_DESCRIPTION, VR::LO, "Synthetic series"),
            text(tags::PATIENT_NAME, VR::PN, self.patient),
            text(tags::PATIENT_ID, VR::LO, self.patient_id),
            text(tags::STUDY_INSTANCE_UID, VR::UI, &self.study),
            text(tags::SERIES_INSTANCE_UID, VR::UI, &self.series),
            text(tags::SERIES_NUMBER, VR::IS, &self.series_number.to_string()),
            text(
                tags::INSTANCE_NUMBER,
                VR::IS,
                &self.instance_number.to_string(),
            ),
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                PrimitiveValue::from(vec![0x5au8; self.pixels]),
            ),
        ]);
        part10(object, uids::CT_IMAGE_STORAGE, &self.sop)
    }

    /// The file cut off after `keep` bytes of the patient's name: it starts like DICOM and
    /// its header does not parse.
    pub fn cut_in_patient_name(&self, keep: usize) -> Vec<u8> {
        let mut bytes = self.bytes();
        let at = bytes
            .windows(self.patient.len())
            .position(|w| w == self.patient.as_bytes())
            .expect("the name is in the file");
        bytes.truncate(at + keep);
        bytes
    }
}

/// A DICOMDIR listing `files` (path components as on a CD, and the SOP instance each
/// holds), all in `study`.
pub fn dicomdir(study: &str, files: &[(Vec<&str>, &str)]) -> Vec<u8> {
    let record = |kind: &str, mut elements: Vec<DataElement<InMemDicomObject>>| {
        elements.push(DataElement::new(
            tags::DIRECTORY_RECORD_TYPE,
            VR::CS,
            PrimitiveValue::from(kind),
        ));
        InMemDicomObject::from_element_iter(elements)
    };
    let uid = |tag, value: &str| DataElement::new(tag, VR::UI, PrimitiveValue::from(value));
    let mut records = vec![
        record("PATIENT", vec![]),
        record("STUDY", vec![uid(tags::STUDY_INSTANCE_UID, study)]),
        record("SERIES", vec![]),
    ];
    for (path, sop) in files {
        records.push(record(
            "IMAGE",
            vec![
                DataElement::new(
                    tags::REFERENCED_FILE_ID,
                    VR::CS,
                    PrimitiveValue::Strs(path.iter().map(|p| p.to_string()).collect()),
                ),
                uid(tags::REFERENCED_SOP_INSTANCE_UID_IN_FILE, sop),
            ],
        ));
    }
    let object = InMemDicomObject::from_element_iter([DataElement::new(
        tags::DIRECTORY_RECORD_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(records),
    )]);
    part10(object, "1.2.840.10008.1.3.10", &format!("{study}.999"))
}

/// Runs `scripts/dicom-fixtures.sh` into `out` and returns the CD's manifest.
pub fn pydicom_cd(out: &std::path::Path) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dicom-fixtures.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(out)
        .status()
        .expect("the fixture script runs");
    assert!(status.success(), "scripts/dicom-fixtures.sh failed");
    serde_json::from_slice(&std::fs::read(out.join("cd.json")).unwrap()).unwrap()
}

fn part10(object: InMemDicomObject, sop_class: &str, sop: &str) -> Vec<u8> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop)
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let mut out = Vec::new();
    object.with_meta(meta).unwrap().write_all(&mut out).unwrap();
    out
}

impl Tus {
    /// Sends one file of a folder upload (one request, creation-with-upload) and returns
    /// the status and the upload id when one was made.
    pub async fn send_in_batch(
        &self,
        batch: Option<&str>,
        relative_path: &str,
        data: &[u8],
    ) -> (u16, Option<String>, String) {
        let name = relative_path.rsplit('/').next().unwrap_or(relative_path);
        let mut meta = vec![("filename", name), ("relativePath", relative_path)];
        if let Some(batch) = batch {
            meta.push(("batch", batch));
        }
        let res = self
            .create_with_body(data.len() as u64, &meta, Some(data.to_vec()))
            .await;
        let status = res.status().as_u16();
        let id = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.rsplit('/').next())
            .map(str::to_string);
        (status, id, res.text().await.unwrap_or_default())
    }
}

/// Batches over JSON, with the same credentials as the tus requests.
impl Tus {
    /// POST /batches with `body` as it is (so tests can send bad JSON too).
    pub async fn declare_batch_raw(&self, body: &str) -> reqwest::Response {
        self.request(reqwest::Method::POST, self.batches())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Declares a batch of `files` files in `bucket` (the default one when `None`) and
    /// returns its id.
    pub async fn open_batch(&self, bucket: Option<&str>, files: u64) -> String {
        let body = serde_json::json!({ "bucket": bucket, "files": files, "bytes": files * 4096 });
        let res = self.declare_batch_raw(&body.to_string()).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 201, "POST /batches: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["id"].as_str().unwrap().to_string()
    }

    /// GET /batches/{id}.
    pub async fn batch(&self, id: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, &format!("{}/{id}", self.batches()))
            .send()
            .await
            .unwrap()
    }

    /// GET /batches/{id}, asserting 200; the summary as JSON.
    pub async fn batch_status(&self, id: &str) -> serde_json::Value {
        let res = self.batch(id).await;
        assert_eq!(res.status(), 200, "GET /batches/{id}");
        res.json().await.unwrap()
    }

    /// POST /batches/{id}/finish with `{"skipped": skipped}`.
    pub async fn finish_batch(&self, id: &str, skipped: u64) -> reqwest::Response {
        self.request(
            reqwest::Method::POST,
            &format!("{}/{id}/finish", self.batches()),
        )
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "skipped": skipped }).to_string())
        .send()
        .await
        .unwrap()
    }
}
