//! Synthetic FHIR R4 exports: NDJSON generated on the fly, deterministic for a seed, of any
//! size, with per-type counts known in advance (so an event's `stats` match its files).
//!
//! Resource `i` of an export has a type fixed by its position: one Patient, one Organization
//! and one Practitioner first, then a repeating clinical pattern. Every resource refers to the
//! export's patient, and DocumentReferences carry a base64 attachment, as real exports do.

use base64::Engine;
use bytes::Bytes;
use serde_json::json;
use std::collections::BTreeMap;

/// The types an export holds.
pub const TYPES: [&str; 11] = [
    "Patient",
    "Organization",
    "Practitioner",
    "Encounter",
    "Observation",
    "Condition",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "DiagnosticReport",
    "DocumentReference",
];

/// The clinical part repeats this pattern (observations are the most common resource).
const PATTERN: [&str; 12] = [
    "Encounter",
    "Observation",
    "Observation",
    "Observation",
    "Condition",
    "MedicationRequest",
    "Observation",
    "AllergyIntolerance",
    "Immunization",
    "DiagnosticReport",
    "Observation",
    "DocumentReference",
];

/// The type of resource `i`.
pub fn resource_type(i: u64) -> &'static str {
    match i {
        0 => "Patient",
        1 => "Organization",
        2 => "Practitioner",
        n => PATTERN[((n - 3) % PATTERN.len() as u64) as usize],
    }
}

/// Resources per type in an export of `n` resources.
pub fn counts(n: u64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for i in 0..n.min(3) {
        *out.entry(resource_type(i).to_string()).or_insert(0) += 1;
    }
    if n > 3 {
        let rest = n - 3;
        let full = rest / PATTERN.len() as u64;
        let partial = (rest % PATTERN.len() as u64) as usize;
        for (k, t) in PATTERN.iter().enumerate() {
            let c = full + u64::from(k < partial);
            if c > 0 {
                *out.entry((*t).to_string()).or_insert(0) += c;
            }
        }
    }
    out
}

/// A seed from any text (task id and file name), stable across runs and platforms.
pub fn seed_of(text: &str) -> u64 {
    // FNV-1a: small, stable, good enough to vary synthetic content.
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Mixes `seed` and `i` into a pseudo-random number.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const NOTE: &str =
    "Progress note. Patient seen for follow-up of hypertension and type 2 diabetes. \
Blood pressure improved on current regimen. HbA1c trending down. Continue metformin 500 mg \
twice daily and lisinopril 10 mg daily. Diet and exercise counselling given. Return in three \
months with fasting labs. ";

/// One export file being generated.
pub struct Export {
    seed: u64,
    n: u64,
    next: u64,
    attachment: String,
}

/// Bytes per generated chunk.
const CHUNK: usize = 64 * 1024;

impl Export {
    /// An export of `n` resources whose content depends only on `seed`.
    pub fn new(seed: u64, n: u64) -> Export {
        let text = NOTE.repeat(12);
        Export {
            seed,
            n,
            next: 0,
            attachment: base64::engine::general_purpose::STANDARD.encode(text),
        }
    }

    fn id(&self, kind: &str, i: u64) -> String {
        format!("{kind}-{:x}-{i}", self.seed & 0xffff_ffff)
    }

    /// Resource `i` as one JSON line (without the newline).
    pub fn resource(&self, i: u64) -> serde_json::Value {
        let r = mix(self.seed, i);
        let patient = format!("Patient/{}", self.id("pat", 0));
        let practitioner = format!("Practitioner/{}", self.id("prac", 2));
        let encounter = format!("Encounter/{}", self.id("enc", 3));
        let day = 1 + r % 28;
        let month = 1 + (r >> 8) % 12;
        let date = format!("2024-{month:02}-{day:02}");
        let when = format!("{date}T{:02}:{:02}:00Z", (r >> 16) % 24, (r >> 24) % 60);
        let kind = resource_type(i);
        match kind {
            "Patient" => json!({
                "resourceType": "Patient", "id": self.id("pat", i),
                "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
                "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0", "value": format!("E{}", r % 10_000_000)}],
                "name": [{"use": "official", "family": "Example", "given": ["Jamie", "Lee"]}],
                "gender": if r % 2 == 0 { "female" } else { "male" },
                "birthDate": format!("19{:02}-{month:02}-{day:02}", 40 + r % 60),
                "address": [{"line": ["123 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}],
                "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}]
            }),
            "Organization" => json!({
                "resourceType": "Organization", "id": self.id("org", i),
                "name": "Springfield General Hospital", "active": true,
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
                "address": [{"city": "Springfield", "state": "IL"}]
            }),
            "Practitioner" => json!({
                "resourceType": "Practitioner", "id": self.id("prac", i),
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1093817465"}],
                "name": [{"family": "Rivera", "given": ["Alex"], "prefix": ["Dr."]}]
            }),
            "Encounter" => json!({
                "resourceType": "Encounter", "id": self.id("enc", i), "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
                "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up"}]}],
                "subject": {"reference": patient},
                "participant": [{"individual": {"reference": practitioner}}],
                "period": {"start": when, "end": when}
            }),
            "Observation" => {
                let (code, display, value, unit) = match r % 4 {
                    0 => ("8867-4", "Heart rate", 60 + r % 40, "/min"),
                    1 => ("8480-6", "Systolic blood pressure", 105 + r % 40, "mm[Hg]"),
                    2 => (
                        "2339-0",
                        "Glucose [Mass/volume] in Blood",
                        80 + r % 90,
                        "mg/dL",
                    ),
                    _ => ("29463-7", "Body weight", 50 + r % 60, "kg"),
                };
                json!({
                    "resourceType": "Observation", "id": self.id("obs", i), "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
                    "subject": {"reference": patient}, "encounter": {"reference": encounter},
                    "effectiveDateTime": when,
                    "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
                })
            }
            "Condition" => json!({
                "resourceType": "Condition", "id": self.id("cond", i),
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]},
                "subject": {"reference": patient}, "onsetDateTime": when, "recordedDate": date
            }),
            "MedicationRequest" => json!({
                "resourceType": "MedicationRequest", "id": self.id("medrx", i),
                "status": "active", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975", "display": "metformin hydrochloride 500 MG Oral Tablet"}]},
                "subject": {"reference": patient}, "authoredOn": date, "requester": {"reference": practitioner},
                "dosageInstruction": [{"text": "Take 1 tablet by mouth twice daily"}]
            }),
            "AllergyIntolerance" => json!({
                "resourceType": "AllergyIntolerance", "id": self.id("alg", i),
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
                "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980", "display": "Penicillin G"}]},
                "patient": {"reference": patient}, "recordedDate": date,
                "reaction": [{"manifestation": [{"coding": [{"system": "http://snomed.info/sct", "code": "247472004", "display": "Hives"}]}]}]
            }),
            "Immunization" => json!({
                "resourceType": "Immunization", "id": self.id("imm", i), "status": "completed",
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140", "display": "Influenza, seasonal, injectable, preservative free"}]},
                "patient": {"reference": patient}, "occurrenceDateTime": when, "primarySource": true
            }),
            "DiagnosticReport" => json!({
                "resourceType": "DiagnosticReport", "id": self.id("dr", i), "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8", "display": "Comprehensive metabolic panel"}]},
                "subject": {"reference": patient}, "encounter": {"reference": encounter},
                "effectiveDateTime": when, "issued": when,
                "result": [{"reference": format!("Observation/{}", self.id("obs", 4))}]
            }),
            _ => json!({
                "resourceType": "DocumentReference", "id": self.id("doc", i), "status": "current",
                "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
                "subject": {"reference": patient}, "date": when,
                "author": [{"reference": practitioner}],
                "content": [{"attachment": {"contentType": "text/plain", "data": self.attachment, "title": "Progress note"}}],
                "context": {"encounter": [{"reference": encounter}]}
            }),
        }
    }

    /// Whether every resource was generated.
    pub fn is_done(&self) -> bool {
        self.next >= self.n
    }
}

impl Iterator for Export {
    type Item = Bytes;

    /// The next chunk of about 64 KiB of whole lines.
    fn next(&mut self) -> Option<Bytes> {
        if self.is_done() {
            return None;
        }
        let mut buf = Vec::with_capacity(CHUNK + 16 * 1024);
        while buf.len() < CHUNK && self.next < self.n {
            if write_line(&mut buf, self.resource(self.next)).is_err() {
                return None;
            }
            self.next += 1;
        }
        Some(Bytes::from(buf))
    }
}

/// Writes one resource as a line, `resourceType` and `id` first as FHIR servers write them
/// (serde_json's maps are sorted, which would put them anywhere).
fn write_line(buf: &mut Vec<u8>, mut value: serde_json::Value) -> serde_json::Result<()> {
    let Some(map) = value.as_object_mut() else {
        return Ok(());
    };
    let kind = map.remove("resourceType").unwrap_or_default();
    let id = map.remove("id").unwrap_or_default();
    buf.extend_from_slice(b"{\"resourceType\":");
    serde_json::to_writer(&mut *buf, &kind)?;
    buf.extend_from_slice(b",\"id\":");
    serde_json::to_writer(&mut *buf, &id)?;
    let rest = serde_json::to_vec(&value)?;
    if rest.len() > 2 {
        buf.push(b',');
    }
    buf.extend_from_slice(rest.get(1..).unwrap_or(b"}"));
    buf.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_what_is_generated() {
        for n in [0, 1, 3, 4, 15, 16, 100] {
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            let mut lines = 0;
            for chunk in Export::new(7, n) {
                for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                    *seen
                        .entry(v["resourceType"].as_str().unwrap().to_string())
                        .or_default() += 1;
                    assert!(v["id"].as_str().is_some());
                    lines += 1;
                }
            }
            assert_eq!(lines, n);
            assert_eq!(seen, counts(n), "n = {n}");
        }
        assert_eq!(counts(200).len(), TYPES.len());
    }

    #[test]
    fn lines_start_with_resource_type_and_id() {
        let chunk = Export::new(3, 2).next().unwrap();
        let first = chunk.split(|b| *b == b'\n').next().unwrap();
        let text = std::str::from_utf8(first).unwrap();
        assert!(
            text.starts_with(r#"{"resourceType":"Patient","id":"pat-"#),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v, Export::new(3, 2).resource(0));
    }

    #[test]
    fn content_is_deterministic_for_a_seed() {
        let a: Vec<Bytes> = Export::new(1, 20).collect();
        let b: Vec<Bytes> = Export::new(1, 20).collect();
        let c: Vec<Bytes> = Export::new(2, 20).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
