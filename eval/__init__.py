"""funfactory.eval"""
