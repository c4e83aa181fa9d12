"""funfactory.model"""
