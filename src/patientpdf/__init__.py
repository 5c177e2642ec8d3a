"""patientpdf: a patient-document intake service."""

__version__ = "0.1.0"
