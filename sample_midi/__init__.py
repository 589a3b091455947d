"""The bundled corpus: public-domain Bach chorales as MIDI (see SOURCE.md)."""
