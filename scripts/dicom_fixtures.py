#!/usr/bin/env python3
"""DICOM test data for study uploads, made with pydicom (a DICOM library this project did
not write) from the vendor test files bundled in the pydicom wheel. Run it through
scripts/dicom-fixtures.sh, which installs the pinned pydicom and skips work already done.

  dicom_fixtures.py OUT_DIR [--many N] [--bench COUNT SIZE_KIB] [--stamp TEXT]

Writes into OUT_DIR (and removes only what it wrote there before):

  cd/                   a PS3.10 file-set as on a CD, written by pydicom.fileset.FileSet:
                        cd/DICOMDIR and extensionless PT000000/ST000000/SE00000n/IM00000n
                        files; one study (3 series: CT, MR, OT; 12 instances)
  cd.json               its manifest (below)
  many/ + many.json     with --many N: N instances of a second study of the same patient in
                        3 series: many/series1/IM0001 (no extension), many/series2/IM0001.dcm,
                        and series 3 at the top level (OT0001.dcm, OT0002, ...), plus the
                        junk files many/.DS_Store and many/Thumbs.db; no DICOMDIR
  bench-C-S/ + .json    with --bench C S: C instances of a third study, each exactly S KiB
                        (a larger pixel matrix, then Data Set Trailing Padding for the rest;
                        S below 7 gives the smallest such file, 6768 bytes),
                        bench-C-S/IM000001.dcm ...
  manifest.json         written last: the arguments (and --stamp) the outputs were made for

Every manifest (cd.json, many.json, bench-C-S.json) has the same shape; paths are POSIX and
relative to the set's directory (`root`):

  {"root": "cd", "study_instance_uid", "study_description", "patient_name", "patient_id",
   "accession_number",
   "series": [{"series_instance_uid", "modality", "series_number", "description",
               "instances"}],
   "instances": [{"relative_path", "sop_instance_uid", "series_instance_uid",
                  "source" (the bundled file it was made from), "size", "sha256"}],
   "dicomdir": {"relative_path": "DICOMDIR", "size", "sha256"},   # cd.json only
   "junk": [{"relative_path", "size", "sha256"}],                 # many.json only
   "total_size"}

All UIDs are derived from fixed names (generate_uid with entropy_srcs, pydicom's root), so a
re-run writes byte-identical files and manifests. Every file written is read back with
pydicom.dcmread (the DICOMDIR through pydicom.fileset.FileSet) before its manifest is written.
"""
import argparse
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import sys

import pydicom
import pydicom.data
from pydicom import dcmread
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid

# The vendor test files that ship inside the pydicom wheel; nothing is ever downloaded.
TEST_FILES = pathlib.Path(pydicom.data.__file__).parent / "test_files"

PATIENT = {
    "PatientName": "MEDPORT^FIXTURE^PATIENT",
    "PatientID": "MEDPORT-PID-0001",
    "PatientBirthDate": "19700101",
    "PatientSex": "O",
}
INSTITUTION = "MEDPORT Fixture Hospital"
REFERRER = "MEDPORT^REFERRING^PHYSICIAN"

# cd/: (series number, description, modality, bundled source files: one instance each).
CD_SERIES = [
    (1, "MEDPORT CT series", "CT", ["CT_small.dcm"] * 4),
    # One MR image in five transfer syntaxes, as vendors mix them on real media.
    (2, "MEDPORT MR series", "MR", [
        "MR_small.dcm",                  # explicit VR little endian
        "MR_small_implicit.dcm",         # implicit VR little endian
        "MR_small_expb.dcm",             # explicit VR big endian (retired, still found)
        "MR_small_RLE.dcm",              # RLE lossless
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    ]),
    (3, "MEDPORT secondary capture series", "OT", [
        "SC_rgb_small_odd.dcm",          # explicit VR little endian, RGB
        "SC_rgb_rle.dcm",                # RLE lossless, RGB
        "SC_rgb_jpeg_dcmtk.dcm",         # JPEG baseline, RGB
    ]),
]
# many/: (series number, description, modality, bundled source); paths from many_path().
MANY_SERIES = [
    (1, "MEDPORT many CT", "CT", "CT_small.dcm"),
    (2, "MEDPORT many MR", "MR", "MR_small.dcm"),
    (3, "MEDPORT many OT", "OT", "SC_rgb_small_odd.dcm"),
]
BENCH_SOURCE = "CT_small.dcm"

# Two files a desktop leaves in a copied folder: macOS Finder's and Windows Explorer's.
JUNK = {
    ".DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(1016),
    "Thumbs.db": bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504),
}


def uid(*names):
    """A UID under pydicom's root, the same for the same names on every run."""
    return generate_uid(entropy_srcs=["medport-dicom-fixtures", *map(str, names)])


def source(name):
    path = TEST_FILES / name
    if not path.is_file():
        sys.exit(f"dicom_fixtures: {name} is not among pydicom's bundled test files ({TEST_FILES})")
    return dcmread(path)


def set_study(ds, study):
    """Makes ds an instance of `study` (a dict of study-level attributes) for the fixture patient."""
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    # The bundled files name other patients in places; leave none of them behind.
    for keyword in ("OtherPatientIDs", "OtherPatientNames", "PatientAge", "PatientAddress",
                    "PatientComments", "PerformingPhysicianName", "OperatorsName",
                    "NameOfPhysiciansReadingStudy", "RequestingPhysician", "PhysiciansOfRecord"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.StudyInstanceUID = study["uid"]
    ds.StudyID = study["id"]
    ds.StudyDate = study["date"]
    ds.StudyTime = study["time"]
    ds.StudyDescription = study["description"]
    ds.AccessionNumber = study["accession"]
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = REFERRER


def set_series(ds, series):
    ds.SeriesInstanceUID = series["series_instance_uid"]
    ds.SeriesNumber = series["series_number"]
    ds.SeriesDescription = series["description"]
    ds.SeriesDate = ds.StudyDate
    ds.FrameOfReferenceUID = series["frame_of_reference_uid"]


def set_instance(ds, sop_uid, number):
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.InstanceNumber = number


def new_series(set_name, number, description, modality):
    return {
        "series_instance_uid": uid(set_name, "series", number),
        "frame_of_reference_uid": uid(set_name, "frame-of-reference", number),
        "modality": modality,
        "series_number": number,
        "description": description,
        "instances": 0,
    }


def study_for(set_name, study_id, description, accession, date, time):
    return {
        "uid": uid(set_name, "study"),
        "id": study_id,
        "description": description,
        "accession": accession,
        "date": date,
        "time": time,
    }


def file_entry(root, path, **extra):
    data = path.read_bytes()
    return {
        "relative_path": path.relative_to(root).as_posix(),
        **extra,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }, data


def check_instance(data, study_uid, entry):
    """Reads a written file back with pydicom: a Part 10 file of the expected study and instance."""
    ds = dcmread(io.BytesIO(data))
    want = (study_uid, entry["series_instance_uid"], entry["sop_instance_uid"])
    got = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    if got != want or ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
        sys.exit(f"dicom_fixtures: {entry['relative_path']} reads back as {got}, expected {want}")
    if str(ds.PatientName) != PATIENT["PatientName"]:
        sys.exit(f"dicom_fixtures: {entry['relative_path']} has patient {ds.PatientName}")


def manifest(root_name, study, series, instances, **extra):
    return {
        "root": root_name,
        "study_instance_uid": study["uid"],
        "study_description": study["description"],
        "patient_name": PATIENT["PatientName"],
        "patient_id": PATIENT["PatientID"],
        "accession_number": study["accession"],
        "series": [{k: s[k] for k in ("series_instance_uid", "modality", "series_number",
                                      "description", "instances")} for s in series],
        "instances": instances,
        **extra,
        "total_size": sum(i["size"] for i in instances)
        + sum(e["size"] for k in ("junk",) for e in extra.get(k, []))
        + (extra["dicomdir"]["size"] if "dicomdir" in extra else 0),
    }


# ---------------------------------------------------------------- cd/


def write_cd(out):
    root = out / "cd"
    study = study_for("cd", "MPFX-CD", "MEDPORT fixture study", "MEDPORT-ACC-1", "20240102", "093000")
    fs = FileSet()
    fs.UID = uid("cd", "file-set")
    fs.ID = "MEDPORT_FIXTURE"
    series_list, sources = [], {}
    for number, description, modality, files in CD_SERIES:
        series = new_series("cd", number, description, modality)
        series_list.append(series)
        for i, name in enumerate(files, 1):
            ds = source(name)
            if ds.Modality != modality:
                sys.exit(f"dicom_fixtures: {name} is {ds.Modality}, series {number} is {modality}")
            set_study(ds, study)
            set_series(ds, series)
            sop = uid("cd", "instance", number, i)
            set_instance(ds, sop, i)
            if "ImagePositionPatient" in ds:  # a stack: 5 mm apart
                ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 5.0 * (i - 1)
                if "SliceLocation" in ds:
                    ds.SliceLocation = float(ds.SliceLocation) + 5.0 * (i - 1)
            fs.add(ds)
            sources[sop] = name
            series["instances"] += 1
    fs.write(root)

    # The manifest comes from the DICOMDIR as pydicom reads it back.
    read = FileSet(dcmread(root / "DICOMDIR"))
    instances = []
    for inst in read:
        path = pathlib.Path(inst.path)
        entry, data = file_entry(root, path, sop_instance_uid=inst.SOPInstanceUID,
                                 series_instance_uid=inst.SeriesInstanceUID,
                                 source=sources[inst.SOPInstanceUID])
        check_instance(data, study["uid"], entry)
        instances.append(entry)
    instances.sort(key=lambda e: e["relative_path"])
    if sorted(e["sop_instance_uid"] for e in instances) != sorted(sources):
        sys.exit("dicom_fixtures: the DICOMDIR does not list the instances that were added")
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    if written != sorted(["DICOMDIR", *(e["relative_path"] for e in instances)]):
        sys.exit(f"dicom_fixtures: cd/ holds files the DICOMDIR does not list: {written}")
    dicomdir, _ = file_entry(root, root / "DICOMDIR")
    return manifest("cd", study, series_list, instances, dicomdir=dicomdir)


# ---------------------------------------------------------------- many/


def many_path(series_number, index, width):
    n = f"{index:0{width}d}"
    if series_number == 1:
        return f"series1/IM{n}"
    if series_number == 2:
        return f"series2/IM{n}.dcm"
    return f"OT{n}.dcm" if index % 2 else f"OT{n}"


def write_many(out, count):
    root = out / "many"
    study = study_for("many", "MPFX-MANY", "MEDPORT fixture study (many files)", "MEDPORT-ACC-2",
                      "20240103", "101500")
    width = max(4, len(str(count)))
    counts = [count // 3 + (1 if k < count % 3 else 0) for k in range(3)]
    series_list, instances = [], []
    for (number, description, modality, name), n in zip(MANY_SERIES, counts, strict=True):
        series = new_series("many", number, description, modality)
        series_list.append(series)
        ds = source(name)
        set_study(ds, study)
        set_series(ds, series)
        for i in range(1, n + 1):
            sop = uid("many", "instance", number, i)
            set_instance(ds, sop, i)
            path = root / many_path(number, i, width)
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            entry, data = file_entry(root, path, sop_instance_uid=sop,
                                     series_instance_uid=series["series_instance_uid"],
                                     source=name)
            check_instance(data, study["uid"], entry)
            instances.append(entry)
            series["instances"] += 1
    junk = []
    for name, data in JUNK.items():
        (root / name).write_bytes(data)
        junk.append(file_entry(root, root / name)[0])
    return manifest("many", study, series_list, instances, junk=junk)


# ---------------------------------------------------------------- bench-C-S/


def even_len(text):
    return len(text) + len(text) % 2


def sized_bench_dataset(study, series, size):
    """CT_small.dcm made `size` bytes long: more rows of its own pixels, then (FFFC,FFFC) Data
    Set Trailing Padding for the rest. Returns the dataset and the padding's length for
    InstanceNumber 1 (None when `size` is below what one row takes: then files are larger)."""
    ds = source(BENCH_SOURCE)
    set_study(ds, study)
    set_series(ds, series)
    set_instance(ds, uid("bench", "probe"), 1)  # UIDs are all 64 characters: same length
    pixels = bytes(ds.PixelData)
    bytes_per_row = ds.Columns * ds.SamplesPerPixel * (ds.BitsAllocated // 8)

    def encoded(rows, pad=None):
        ds.Rows = rows
        ds.PixelData = (pixels * (rows * bytes_per_row // len(pixels) + 1))[: rows * bytes_per_row]
        if "DataSetTrailingPadding" in ds:
            del ds.DataSetTrailingPadding
        if pad is not None:
            ds.DataSetTrailingPadding = bytes(pad)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return len(buf.getvalue())

    # The padding element (OB) takes a 12-byte header; `slack` more bytes let a longer
    # InstanceNumber (up to 9 digits) take its room from the padding.
    header, slack = 12, 8
    overhead = encoded(1) - bytes_per_row
    rows = max(1, (size - overhead - header - slack) // bytes_per_row)
    rest = size - encoded(rows)
    if rest < header + slack:
        return ds, None
    encoded(rows, rest - header)
    return ds, rest - header


def write_bench(out, count, kib):
    name = f"bench-{count}-{kib}"
    root = out / name
    root.mkdir(parents=True)
    study = study_for(name, "MPFX-BENCH", f"MEDPORT fixture study ({count} files of {kib} KiB)",
                      "MEDPORT-ACC-3", "20240104", "120000")
    series = new_series(name, 1, "MEDPORT bench CT", "CT")
    ds, pad = sized_bench_dataset(study, series, kib * 1024)
    width = max(6, len(str(count)))
    instances = []
    for i in range(1, count + 1):
        sop = uid(name, "instance", i)
        set_instance(ds, sop, i)
        if pad is not None and i in (10**2, 10**4, 10**6, 10**8):  # InstanceNumber 2 bytes longer
            ds.DataSetTrailingPadding = bytes(pad - (even_len(str(i)) - 2))
        path = root / f"IM{i:0{width}d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        entry, data = file_entry(root, path, sop_instance_uid=sop,
                                 series_instance_uid=series["series_instance_uid"],
                                 source=BENCH_SOURCE)
        check_instance(data, study["uid"], entry)
        instances.append(entry)
    series["instances"] = count
    return name, manifest(name, study, [series], instances)


# ---------------------------------------------------------------- main


def remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path, value):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=pathlib.Path)
    p.add_argument("--many", type=int, metavar="N")
    p.add_argument("--bench", type=int, nargs=2, metavar=("COUNT", "SIZE_KIB"))
    p.add_argument("--stamp", default="", help="recorded in manifest.json (the caller's up-to-date key)")
    args = p.parse_args()
    if args.many is not None and args.many < 3:
        p.error("--many needs N >= 3 (one instance per series at least)")
    if args.bench and (args.bench[0] < 1 or args.bench[1] < 1):
        p.error("--bench needs COUNT >= 1 and SIZE_KIB >= 1")

    out = args.out_dir.absolute()
    out.mkdir(parents=True, exist_ok=True)
    top = out / "manifest.json"
    # Forget the old outputs first: an interrupted run leaves no manifest.json behind.
    owned = {"cd", "cd.json", "many", "many.json"}
    if top.exists():
        try:
            owned.update(json.loads(top.read_text()).get("outputs", []))
        except ValueError:
            pass
        top.unlink()
    # Bench sets of other sizes too, should a run have stopped before its manifest.json.
    owned.update(p.name for p in out.iterdir() if re.fullmatch(r"bench-\d+-\d+(\.json)?", p.name))
    for name in sorted(owned):
        if "/" not in name and name not in ("", ".", ".."):
            remove(out / name)

    outputs, sets = [], {}
    cd = write_cd(out)
    write_json(out / "cd.json", cd)
    outputs += ["cd", "cd.json"]
    sets["cd"] = "cd.json"
    if args.many is not None:
        write_json(out / "many.json", write_many(out, args.many))
        outputs += ["many", "many.json"]
        sets["many"] = "many.json"
    if args.bench:
        name, m = write_bench(out, *args.bench)
        write_json(out / f"{name}.json", m)
        outputs += [name, f"{name}.json"]
        sets["bench"] = f"{name}.json"

    write_json(top, {
        "stamp": args.stamp,
        "generator": "scripts/dicom_fixtures.py",
        "pydicom_version": pydicom.__version__,
        "args": {"many": args.many, "bench": args.bench},
        "sets": sets,
        "outputs": outputs,
    })
    for file in sets.values():
        m = json.loads((out / file).read_text())
        print(f"dicom-fixtures: {out / m['root']}: {len(m['instances'])} instances in "
              f"{len(m['series'])} series, {m['total_size']} bytes")


if __name__ == "__main__":
    main()
