"""What a trained model makes: sample (`seqgate sample`, new pieces as MIDI), metrics (MusPy's
measures of a roll), audio (`seqgate render`, MIDI to WAV), plots (piano rolls and learning curves).
"""
