"""funfactory.synth"""
