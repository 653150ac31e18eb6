"""The provider layer: provider clients built once from the configuration (:mod:`.build`) and the
provider state every process on the same database shares (:mod:`.state`): APNs provider tokens,
FCM access tokens, and each target's Retry-After deadline.

The worker, ``PushNotification`` and ``pushrelay send`` all get their clients here.
"""
