"""funfactory.tests"""
