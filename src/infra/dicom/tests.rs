use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::*;

fn element(tag: dicom_core::Tag, vr: VR, value: &str) -> dicom_core::DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn part10(sop_class: &str, sop: &str, body: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let mut object = InMemDicomObject::from_element_iter(body);
    object.put(element(tags::SOP_CLASS_UID, VR::UI, sop_class));
    object.put(element(tags::SOP_INSTANCE_UID, VR::UI, sop));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop)
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let file: FileDicomObject<InMemDicomObject> = object.with_meta(meta).unwrap();
    let mut out = Vec::new();
    file.write_all(&mut out).unwrap();
    out
}

fn ct_slice(pixels: usize) -> Vec<u8> {
    part10(
        uids::CT_IMAGE_STORAGE,
        "1.2.3.4.5.6",
        vec![
            element(tags::PATIENT_NAME, VR::PN, "DOE^JANE"),
            element(tags::PATIENT_ID, VR::LO, "PID-7"),
            element(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4"),
            element(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4.5"),
            element(tags::MODALITY, VR::CS, "CT"),
            element(tags::STUDY_DESCRIPTION, VR::LO, "Chest "),
            element(tags::SERIES_NUMBER, VR::IS, "3"),
            element(tags::INSTANCE_NUMBER, VR::IS, "12"),
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::from(vec![0u8; pixels]),
            ),
        ],
    )
}

#[test]
fn an_image_header_gives_its_uids_and_keeps_patient_attributes_apart() {
    let Parsed::Instance(header) = read(ct_slice(64).as_slice()).unwrap() else {
        panic!("not an instance");
    };
    assert_eq!(header.study_uid, "1.2.3.4");
    assert_eq!(header.series_uid, "1.2.3.4.5");
    assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
    assert_eq!(
        header.sop_class_uid.as_deref(),
        Some(uids::CT_IMAGE_STORAGE)
    );
    assert_eq!(
        header.transfer_syntax_uid.as_deref(),
        Some(uids::EXPLICIT_VR_LITTLE_ENDIAN)
    );
    assert_eq!(header.modality.as_deref(), Some("CT"));
    assert_eq!(header.study_description.as_deref(), Some("Chest"));
    assert_eq!(
        (header.series_number, header.instance_number),
        (Some(3), Some(12))
    );
    assert_eq!(header.patient.patient_name.as_deref(), Some("DOE^JANE"));
    assert_eq!(header.patient.patient_id.as_deref(), Some("PID-7"));
}

#[test]
fn reading_stops_at_pixel_data() {
    let file = ct_slice(4 * 1024 * 1024);
    let mut counted = CountingReader(file.as_slice(), 0);
    read(&mut counted).unwrap();
    assert!(
        counted.1 < 256 * 1024,
        "read {} bytes of {}",
        counted.1,
        file.len()
    );
}

#[test]
fn a_truncated_header_is_unreadable_not_a_panic() {
    let file = ct_slice(16);
    for cut in [0, 100, 132, 140, 200, 300] {
        let cut = cut.min(file.len());
        let result = read(file.get(..cut).unwrap());
        assert!(
            matches!(
                result,
                Err(Unreadable::Malformed(_)) | Err(Unreadable::Missing(_))
            ),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn an_instance_without_a_study_uid_is_unreadable() {
    let file = part10(
        uids::CT_IMAGE_STORAGE,
        "1.2.9",
        vec![element(tags::MODALITY, VR::CS, "CT")],
    );
    assert_eq!(
        read(file.as_slice()),
        Err(Unreadable::Missing("StudyInstanceUID"))
    );
}

#[test]
fn a_dicomdir_lists_the_files_it_references_with_their_study() {
    let record = |kind: &str, extra: Vec<DataElement<InMemDicomObject>>| {
        let mut item = InMemDicomObject::from_element_iter(extra);
        item.put(element(tags::DIRECTORY_RECORD_TYPE, VR::CS, kind));
        item
    };
    let records = vec![
        record("PATIENT", vec![]),
        record(
            "STUDY",
            vec![element(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3")],
        ),
        record("SERIES", vec![]),
        record(
            "IMAGE",
            vec![
                DataElement::new(
                    tags::REFERENCED_FILE_ID,
                    VR::CS,
                    PrimitiveValue::Strs(
                        ["PT000000", "ST000000", "SE000000", "IM000000"]
                            .into_iter()
                            .map(String::from)
                            .collect(),
                    ),
                ),
                element(tags::REFERENCED_SOP_INSTANCE_UID_IN_FILE, VR::UI, "1.2.3.1"),
            ],
        ),
    ];
    let sequence = DataElement::new(
        tags::DIRECTORY_RECORD_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(records),
    );
    let file = part10("1.2.840.10008.1.3.10", "1.2.3.99", vec![sequence]);
    assert_eq!(
        read(file.as_slice()).unwrap(),
        Parsed::Directory(vec![DirectoryEntry {
            path: "PT000000/ST000000/SE000000/IM000000".into(),
            sop_instance_uid: Some("1.2.3.1".into()),
            study_uid: Some("1.2.3".into()),
        }])
    );
}

struct CountingReader<'a>(&'a [u8], usize);

impl std::io::Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n;
        Ok(n)
    }
}
