"""funfactory.training"""
