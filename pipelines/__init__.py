"""funfactory.pipelines"""
