"""graft.model"""
