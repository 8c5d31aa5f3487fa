"""IIIF input: Presentation manifests and collections (2.1, 3.0) or Image API services -> a local image folder.

    source = iiif_source("https://example.org/iiif/book/manifest", "runs/discover/iiif", max_side=1279)
    source.folder                       # the images, one file per canvas, in canvas order
    source.images[0].canvas_id          # which canvas a file shows, and how its pixels map onto it
    source.failures                     # canvases that could not be fetched, one line each

``manifest`` reads manifests and collections into ``Canvas`` records, ``image_api`` builds Image API URLs and
reads ``info.json``, ``fetch`` downloads (cache, bounded concurrency, timeouts, retries), ``source`` ties them
into a folder that every collection command reads as it reads any folder.
"""
